"""The :class:`Store`: one class made of one mixin per concern, over :class:`~cidash.store.base.StoreBase`."""

from __future__ import annotations

from cidash.store.audit import AuditMixin
from cidash.store.base import StoreBase
from cidash.store.facts import FactsMixin
from cidash.store.pipelines import PipelinesMixin
from cidash.store.registry import RegistryMixin
from cidash.store.repository import RepositoryMixin
from cidash.store.retention import RetentionMixin
from cidash.store.syncstate import SyncStateMixin
from cidash.store.totals import TotalsMixin


class Store(
    PipelinesMixin,
    FactsMixin,
    RegistryMixin,
    RepositoryMixin,
    SyncStateMixin,
    TotalsMixin,
    AuditMixin,
    RetentionMixin,
    StoreBase,
):
    """A cidash store. Open with :meth:`open` and use as a context manager.

    Thread-safe: one connection guarded by a lock (sync writes from one thread; readers may call from workers).
    Write methods commit on their own unless called inside ``with store.transaction():``, which groups them
    into one atomic ``BEGIN IMMEDIATE`` transaction (what sync uses so a cursor advances with its rows).
    """
