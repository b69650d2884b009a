"""cidash.ciconfig: safe loading with line numbers and GitLab's resolution order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cidash.ciconfig import load_ci, load_ci_text, load_yaml
from cidash.cilint import lint
from cidash.errors import InputError

RESOLVE = """\
variables:
  GLOBAL: g
.cache-tpl: &cache-tpl
  key:
    files: [go.mod]
    prefix: deps
  paths: [.go/]
  policy: pull
default:
  image: golang:1.22.5
  retry: {max: 2, when: [runner_system_failure]}
  cache: *cache-tpl
cache:
  key: top-level-ignored
.base:
  stage: build
  resource_group: cache_updates
  before_script: [echo base]
.writer:
  extends: .base
  cache:
    <<: *cache-tpl
    policy: pull-push
warm:
  extends: .writer
  script:
    - echo warm
plain:
  script: echo plain
no-defaults:
  inherit:
    default: [image]
  script: [true]
two-caches:
  cache:
    - key: one
    - key:
        files_commits: [a.lock, b.lock]
      fallback_keys: [one]
      policy: push
  needs: [warm, {job: plain, artifacts: false}]
  when: manual
  script: [true]
"""


def test_default_extends_anchors_and_merge_keys() -> None:
    ci = load_ci_text(RESOLVE, "ci.yml")
    assert [j.name for j in ci.jobs] == ["warm", "plain", "no-defaults", "two-caches"]
    assert ci.templates == (".cache-tpl", ".base", ".writer")
    warm = ci.job("warm")
    assert warm is not None
    assert (warm.line, warm.stage, warm.resource_group) == (24, "build", "cache_updates")
    assert [s.text for s in warm.before_script] == ["echo base"]
    assert warm.image == "golang:1.22.5" and warm.image_line == 10
    (cache,) = warm.caches
    assert (cache.key_files, cache.prefix, cache.policy, cache.index) == (("go.mod",), "deps", "pull-push", 0)
    assert cache.key_files_lines == (5,)  # the anchor's line
    assert cache.origin.startswith("extends") and cache.writes
    plain = ci.job("plain")
    assert plain is not None
    assert plain.caches[0].policy == "pull" and plain.caches[0].origin == "default"  # default: beats top-level
    assert plain.retry_max == 2 and plain.retry_when == ("runner_system_failure",)
    assert [(s.text, s.line) for s in plain.script] == [("echo plain", 29)]
    nd = ci.job("no-defaults")
    assert nd is not None and nd.image == "golang:1.22.5" and nd.caches == () and nd.retry_max == 0
    two = ci.job("two-caches")
    assert two is not None and two.manual and two.needs == ("warm", "plain")
    assert [c.index for c in two.caches] == [0, 1]
    assert two.caches[0].key == "one" and two.caches[0].key_files == ()
    assert two.caches[1].files_commits and two.caches[1].key_files == ("a.lock", "b.lock")
    assert two.caches[1].fallback_keys == ("one",) and two.caches[1].policy == "push"
    assert ci.variables == (("GLOBAL", "g"),)


def test_top_level_globals_apply_without_default() -> None:
    ci = load_ci_text("image: alpine:3.20\ncache: {key: k, paths: [x]}\njob: {script: [true]}\n", "ci.yml")
    job = ci.jobs[0]
    assert job.image == "alpine:3.20" and job.caches[0].key == "k" and job.caches[0].origin == "top-level"


def test_multi_level_extends_list_order_and_cycles() -> None:
    text = """\
.a: {variables: {X: a, Y: a}, script: [a]}
.b: {extends: .a, variables: {Y: b}}
.c: {variables: {Z: c}, script: [c]}
job:
  extends: [.b, .c]
  variables: {W: w}
loop1: {extends: loop2, script: [x]}
loop2: {extends: loop1, script: [y]}
"""
    ci = load_ci_text(text, "ci.yml")
    job = ci.job("job")
    assert job is not None
    assert dict(job.variables) == {"X": "a", "Y": "b", "Z": "c", "W": "w"}
    assert [s.text for s in job.script] == ["c"]  # lists are replaced, later parents win
    assert any(u.kind == "extends" and "circular" in u.reason for u in ci.unresolved)


def test_references_resolved_or_reported() -> None:
    text = """\
.setup:
  script: [echo one, echo two]
job:
  script:
    - !reference [.setup, script]
    - echo three
    - !reference [.missing, script]
"""
    ci = load_ci_text(text, "ci.yml")
    job = ci.job("job")
    assert job is not None
    assert [s.text for s in job.script] == ["echo one", "echo two", "echo three"]
    (u,) = ci.unresolved
    assert (u.kind, u.line) == ("reference", 7) and ".missing" in u.reason


def test_includes(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "cache.yml").write_text(
        ".tpl:\n  cache: {key: {files: [go.mod]}}\nincluded-job:\n  script: [x]\n"
    )
    main = tmp_path / ".gitlab-ci.yml"
    main.write_text(
        "include:\n"
        "  - local: /ci/cache.yml\n"
        "  - remote: https://example.invalid/x.yml\n"
        "  - project: group/shared\n"
        "    file: /templates/go.yml\n"
        "  - template: Jobs/SAST.gitlab-ci.yml\n"
        "  - local: /ci/absent.yml\n"
        "job:\n  extends: .tpl\n  script: [y]\n"
    )
    ci = load_ci(main)
    assert ci.included == ("ci/cache.yml",)
    job = ci.job("job")
    inc = ci.job("included-job")
    assert job is not None and inc is not None
    assert job.caches[0].key_files == ("go.mod",) and job.caches[0].path == "ci/cache.yml"
    assert (inc.path, inc.line) == ("ci/cache.yml", 3)
    kinds = sorted((u.what, u.line) for u in ci.unresolved_includes)
    assert kinds == [
        ("local: /ci/absent.yml", 7),
        ("project: group/shared (/templates/go.yml)", 4),
        ("remote: https://example.invalid/x.yml", 3),
        ("template: Jobs/SAST.gitlab-ci.yml", 6),
    ]
    # From text without a repository directory, a local include is reported, not read.
    text_only = load_ci_text(main.read_text(), ".gitlab-ci.yml")
    assert any(u.what == "local: /ci/cache.yml" for u in text_only.unresolved)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("job:\n  script: [a\n", "ci.yml:3:1"),
        ("job:\n  script: !!python/object:os.system x\n", "ci.yml:2:11"),
        ("job: {a: 1}\n  bad: indent\n", "ci.yml:2:"),
        ("- a\n- b\n", "ci.yml:1:1"),
    ],
)
def test_bad_yaml_is_one_line_with_position(text: str, where: str) -> None:
    with pytest.raises(InputError) as err:
        load_ci_text(text, "ci.yml")
    msg = err.value.one_line()
    assert msg.startswith(where) and "\n" not in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_ci(tmp_path / "nope.yml")


def test_line_numbers_recorded() -> None:
    data = load_yaml("a:\n  b: [1, 2]\n  c:\n    - x\n    - y\n", "f")
    assert data.line_of("a") == 1 and data["a"].line_of("c") == 3
    assert data["a"]["c"].item_lines == [4, 5]
    assert load_ci_text("", "empty.yml").jobs == ()


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(InputError, match=r"ci\.yml:1: invalid YAML: an alias refers to"):
        load_ci_text("a: &a {b: *a}\n", "ci.yml")


def test_exponential_aliases_stay_cheap() -> None:
    lines = [".l1: &l1 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(2, 10):
        lines.append(f".l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    lines.append("job: {script: *l9, cache: {key: {files: *l9}}}")
    ci = load_ci_text("\n".join(lines) + "\n", "ci.yml")
    job = ci.job("job")
    assert job is not None and 0 < len(job.script) <= 10_000


def _laughs(levels: int, leaf: str = "x") -> list[str]:
    """YAML whose last anchor is a list of ten aliases of a list of ten ... (10^levels leaves, a few KB)."""
    lines = [f".l1: &l1 [{', '.join([leaf] * 10)}]"]
    for i in range(2, levels + 1):
        lines.append(f".l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return lines


@pytest.mark.timeout(60)  # the walks these shapes once sent through 10^12 items would run for hours
def test_exponential_aliases_nested_past_where_a_script_is_read_stay_cheap() -> None:
    """A script's lists nested past GitLab's 10 levels keep no line, so the lines' cap alone never stopped the walk
    through 10^12 items (a dashboard or `cidash lint` reading such a CI file, pushed by anyone, never returned)."""
    text = "\n".join([*_laughs(12), "job: {script: *l12, cache: {key: {files: *l12}, paths: *l12}}"]) + "\n"
    ci = load_ci_text(text, "ci.yml")
    job = ci.job("job")
    assert job is not None and job.script == ()
    assert lint(ci) is not None


@pytest.mark.timeout(60)
def test_an_include_of_aliased_lists_is_noted_in_a_few_words() -> None:
    """An include entry that is not a string or a mapping is noted with its text, which a list of aliases makes
    10^11 items long: it is shown up to 200 characters."""
    ci = load_ci_text("\n".join([*_laughs(11), "include: *l11", "job: {script: [x]}"]) + "\n", "ci.yml")
    (first, *_) = ci.unresolved_includes
    assert first.kind == "include" and first.what.startswith("unknown: [[[") and len(first.what) <= 220
    assert [j.name for j in ci.jobs] == ["job"]


def test_local_include_cannot_leave_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "outside.yml").write_text("stolen: {script: [x]}\n")
    ci = load_ci_text("include: {local: ../outside.yml}\njob: {script: [y]}\n", "ci.yml", repo_root=repo)
    assert [j.name for j in ci.jobs] == ["job"]
    assert ci.unresolved_includes[0].reason == "the path leads outside the repository"


def test_spec_header_document_is_skipped_and_other_multi_documents_refused() -> None:
    ci = load_ci_text("spec:\n  inputs:\n    stage: {default: test}\n---\njob:\n  script: [x]\n", "ci.yml")
    assert [(j.name, j.line) for j in ci.jobs] == [("job", 5)]
    with pytest.raises(InputError, match="expected one document, found 2"):
        load_ci_text("a: {script: [x]}\n---\nb: {script: [y]}\n", "ci.yml")


def _pure_python_loader() -> type[yaml.SafeLoader]:
    """The same constructors on PyYAML's pure-Python parser (what a PyYAML built without libyaml uses)."""
    from cidash.ciconfig import loading

    class PureLineLoader(yaml.SafeLoader):
        source_name = ""

    loader = PureLineLoader
    loader.add_constructor("tag:yaml.org,2002:map", loading._construct_map)
    loader.add_constructor("tag:yaml.org,2002:seq", loading._construct_seq)
    loader.add_constructor("!reference", loading._construct_reference)
    return loader


def _shape(value: object) -> object:
    """Values with the lines the loader records, for comparing two loads."""
    from cidash.ciconfig.loading import YList, YMap

    if isinstance(value, YMap):
        return ("map", value.line, sorted((repr(k), value.line_of(k), _shape(v)) for k, v in value.items()))
    if isinstance(value, YList):
        return ("list", value.line, list(value.item_lines), [_shape(v) for v in value])
    return repr(value)


def test_ci_files_are_parsed_by_libyaml_where_pyyaml_has_it() -> None:
    """GitLab parses CI files with libyaml (Ruby's Psych); so does cidash when PyYAML bundles it (its wheels do)."""
    from cidash.ciconfig import loading

    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML was built without libyaml")
    assert issubclass(loading._LineLoader, yaml.CSafeLoader)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "data" / "ci").glob("*.yml")), ids=lambda p: p.name
)
def test_both_yaml_parsers_give_the_same_values_and_lines(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cidash.ciconfig import loading

    text = path.read_text(encoding="utf-8")
    with_libyaml = _shape(load_yaml(text, path.name))
    monkeypatch.setattr(loading, "_LineLoader", _pure_python_loader())
    assert _shape(load_yaml(text, path.name)) == with_libyaml


def test_a_lone_surrogate_is_invalid_yaml_not_a_crash() -> None:
    with pytest.raises(InputError, match=r"ci.yml: invalid YAML: unacceptable character #xd800"):
        load_yaml("a: \ud800\n", "ci.yml")
