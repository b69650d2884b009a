"""Property tests: any valid YAML a user might write loads and lints without a traceback."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cidash.ciconfig import load_ci_text
from cidash.cilint import lint

NAMES = ["a", "b", ".t", ".u", "build-ci-image"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.sampled_from(["", "x", "$V", "go.mod", ".cache-key", "a:latest"])
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["key", "files", "prefix", "policy", "name", "when", "max", "paths"]), inner, max_size=3
        ),
    ),
    max_leaves=8,
)
job_keys = st.sampled_from(
    ["script", "before_script", "cache", "image", "extends", "retry", "artifacts", "needs", "resource_group",
     "variables", "rules", "when", "inherit", "stage"]
)  # fmt: skip
jobs = st.dictionaries(
    job_keys, st.one_of(values, st.sampled_from(NAMES), st.lists(st.sampled_from(NAMES))), max_size=6
)
configs = st.dictionaries(
    st.sampled_from([*NAMES, "default", "cache", "image", "include", "variables"]), jobs, max_size=5
)


@settings(max_examples=120)
@given(configs)
def test_any_config_loads_and_lints(config: dict[str, Any]) -> None:
    text = yaml.safe_dump(config, sort_keys=False)
    ci = load_ci_text(text, "ci.yml")
    findings = lint(ci, repo_root=None)
    n_lines = text.count("\n") + 1
    for job in ci.jobs:
        assert 1 <= job.line <= n_lines
        for cache in job.caches:
            assert cache.index >= 0 and all(isinstance(f, str) for f in cache.key_files)
    for f in findings:
        assert 1 <= f.line <= n_lines and f.severity in ("error", "warning", "info")
