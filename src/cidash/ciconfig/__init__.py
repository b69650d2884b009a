"""Load a ``.gitlab-ci.yml`` safely, with line numbers, and resolve it as far as the local files allow.

Safe loading: a :class:`yaml.SafeLoader` subclass (no arbitrary Python tags) that records where every mapping,
list, key and list item starts, and accepts GitLab's ``!reference [job, key]`` tag. Any other tag, or broken
YAML, is an :class:`cidash.errors.InputError` naming the file, line and column (one line, no traceback).

Resolved here, in GitLab's order: local ``include:`` (when the file exists; remote, project, template and
component includes are reported as not resolved), YAML anchors, aliases and ``<<`` merge keys, ``!reference``
tags that point into the loaded files, ``extends:`` (multi-level, lists, deep merge of mappings), then
``default:`` and the deprecated top-level ``image``/``cache``/``before_script``/... with ``inherit:default``.
Hidden jobs (``.name``) are templates, not jobs.

Public API:

- :func:`load_ci(path, *, repo_root=None) -> CiConfig` and :func:`load_ci_text(text, name, *, repo_root=None)`.
- :class:`CiConfig` — ``jobs`` (each :class:`CiJob` with its *effective* ``caches`` after default/extends),
  ``unresolved`` (includes, references, extends that could not be followed), ``job(name)``.
- :class:`CacheSpec` — one entry of a job's ``cache:`` (``index``, ``key``, ``key_files``, ``files_commits``,
  ``prefix``, ``policy``, ``fallback_keys``, ``line``, ...).

The package, one module per idea: :mod:`~cidash.ciconfig.loading` (safe YAML with line numbers),
:mod:`~cidash.ciconfig.model` (the resolved model), :mod:`~cidash.ciconfig.values` (a job's keys read as GitLab
reads them), :mod:`~cidash.ciconfig.caches` (``cache:`` entries), :mod:`~cidash.ciconfig.resolve` (includes,
references, ``extends:``, ``default:``; :func:`load_ci` and :func:`load_ci_text`).
"""

from __future__ import annotations

from cidash.ciconfig.loading import Reference, YList, YMap, load_yaml
from cidash.ciconfig.model import CacheSpec, CiConfig, CiJob, ScriptLine, Unresolved
from cidash.ciconfig.resolve import DEFAULT_KEYS, RESERVED, deep_merge, load_ci, load_ci_text

__all__ = [
    "DEFAULT_KEYS",
    "RESERVED",
    "CacheSpec",
    "CiConfig",
    "CiJob",
    "Reference",
    "ScriptLine",
    "Unresolved",
    "YList",
    "YMap",
    "deep_merge",
    "load_ci",
    "load_ci_text",
    "load_yaml",
]
