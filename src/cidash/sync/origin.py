"""Which GitLab a store holds: the first sync records the instance's URL, later syncs from another one are refused.

Project, pipeline and job ids are numbered per GitLab instance: project 42 on gitlab.com and project 42 on a
company's instance are different projects, and both instances have a pipeline 1000. A store written from two
instances (the default store path is one per user, not one per instance) would mix them under the same ids: one
project's path overwriting another's, pipelines of the wrong project in its history, and a retry or rebuild
planned from a stored id sent to the other instance. So the store keeps the URL it was synced from (a row of
``sync_state``: project 0, kind ``origin``; no schema change), the first sync of an empty store records it, and a
sync against another URL stops before its first request, with one line saying which store to use instead.

An instance that moved (a new host name, a proxy in front, another port) is still the same instance, with the
same ids: ``cidash sync --accept-origin`` records the new URL once. Only the URL is kept: no token, no user info,
no query.
"""

from __future__ import annotations

from cidash.errors import StoreOriginError
from cidash.remote.policy import instance_url
from cidash.store import Store

#: ``sync_state`` row holding the store's GitLab URL (project 0 is no project: GitLab's ids start at 1).
ORIGIN_PROJECT = 0
ORIGIN_KIND = "origin"

__all__ = ["ORIGIN_KIND", "ORIGIN_PROJECT", "check_store_origin", "claim_store_origin", "instance_url", "store_origin"]


def claim_store_origin(store: Store, url: str, *, accept: bool = False) -> str:
    """Make sure ``store`` holds data from the GitLab at ``url`` before a sync writes to it; returns the recorded
    URL. An empty store, or one written before cidash recorded origins, takes ``url``; ``accept`` records ``url``
    over another one (the instance moved). Raises :class:`StoreOriginError` when the store holds another
    instance's data."""
    wanted = instance_url(url)
    # every project's sync calls this: a read in the usual case, a write transaction only on the store's first sync
    recorded = store_origin(store)
    if recorded is None:
        recorded = store.claim_origin(ORIGIN_PROJECT, ORIGIN_KIND, wanted)
    if recorded == wanted:
        return wanted
    if accept:
        store.set_cursor(ORIGIN_PROJECT, ORIGIN_KIND, wanted)
        return wanted
    raise StoreOriginError(
        f"the store {store.location} holds data synced from {recorded}, not from {wanted}: ids are numbered per "
        "GitLab instance, so syncing both into one store would mix their projects and pipelines",
        hint=(
            "give this GitLab a store of its own: --db PATH, CIDASH_DB or [store] path; if it is the same instance "
            "under a new address, 'cidash sync --accept-origin' records the new URL once"
        ),
    )


def check_store_origin(store: Store, url: str) -> None:
    """Before an action sends ids taken from ``store`` to the GitLab at ``url``: raise :class:`StoreOriginError`
    when the store was synced from another instance (writes nothing; a store with no recorded URL passes)."""
    recorded = store_origin(store)
    wanted = instance_url(url)
    if recorded is not None and recorded != wanted:
        raise StoreOriginError(
            f"the store {store.location} holds data synced from {recorded}, not from {wanted}: its project, "
            "pipeline and job ids would name other records there, so no action is sent",
            hint=f"use the store of {wanted} (--db PATH, CIDASH_DB or [store] path)",
        )


def store_origin(store: Store) -> str | None:
    """The GitLab URL the store was synced from (None: never synced, or synced before cidash recorded it)."""
    return store.cursor(ORIGIN_PROJECT, ORIGIN_KIND)
