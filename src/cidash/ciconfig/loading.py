"""Loading YAML safely, with the line every mapping, list, key and item starts on, and GitLab's ``!reference``.

The document is parsed by libyaml, the C parser PyYAML's wheels bundle: the parser GitLab itself reads CI files
with (Ruby's Psych is built on it), so a syntax error is found where GitLab finds it and is worded as GitLab's
are, and it is faster (a CI file of 600 KB: ~0.9 s of CPU instead of ~3.3 s). Where PyYAML was built
without it, its pure-Python parser does the same work, with slightly different error wording. Either way the
values are built by the same safe constructors below (YAML 1.1 scalars, no arbitrary tags).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cidash.errors import InputError


class YMap(dict[Any, Any]):
    """A YAML mapping that remembers its 1-based ``line``, each key's line and the file it came from."""

    line: int = 0
    source: str = ""
    key_lines: dict[Any, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    """A YAML sequence that remembers its 1-based ``line`` and each item's line."""

    line: int = 0
    source: str = ""
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


@dataclass(frozen=True)
class Reference:
    """An unresolved ``!reference [job, key, ...]`` tag."""

    path: tuple[str, ...]
    line: int
    source: str

    def __str__(self) -> str:
        return f"!reference [{', '.join(self.path)}]"


if TYPE_CHECKING:
    _Parser = yaml.SafeLoader
else:
    _Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it


class _LineLoader(_Parser):
    """A safe loader that builds :class:`YMap`/:class:`YList` and knows ``!reference``."""

    source_name = ""


def _construct_map(loader: _LineLoader, node: MappingNode) -> Iterator[YMap]:
    data = YMap()
    data.line = node.start_mark.line + 1
    data.source = loader.source_name
    yield data
    value = loader.construct_mapping(node)  # flattens << merge keys into node.value first
    data.update(value)
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode):
            try:
                k = loader.construct_object(key_node)
            except yaml.YAMLError:  # pragma: no cover - already constructed above
                continue
            try:
                data.key_lines[k] = key_node.start_mark.line + 1
            except TypeError:  # unhashable keys were rejected by construct_mapping
                continue


def _construct_seq(loader: _LineLoader, node: SequenceNode) -> Iterator[YList]:
    data = YList()
    data.line = node.start_mark.line + 1
    data.source = loader.source_name
    data.item_lines = [n.start_mark.line + 1 for n in node.value]
    yield data
    data.extend(loader.construct_sequence(node))


def _construct_reference(loader: _LineLoader, node: Node) -> Reference:
    if isinstance(node, SequenceNode):
        parts = tuple(str(loader.construct_object(n, deep=True)) for n in node.value)
    elif isinstance(node, ScalarNode):
        parts = (str(node.value),)
    else:
        raise yaml.constructor.ConstructorError(
            None, None, "!reference needs a list like [.job, script]", node.start_mark
        )
    return Reference(parts, node.start_mark.line + 1, loader.source_name)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_LineLoader.add_constructor("!reference", _construct_reference)


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document safely; :class:`InputError` ``name:line:col: problem`` on bad YAML."""
    try:
        loader = _LineLoader(text)  # the reader refuses control characters here, before any parsing
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: invalid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeEncodeError as exc:  # libyaml reads UTF-8: a lone surrogate (a byte that was not UTF-8) has none
        raise InputError(f"{name}: invalid YAML: {_not_utf8(text, exc)}") from None
    loader.source_name = name
    try:
        docs: list[Any] = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            docs.append(loader.get_data())
        if len(docs) == 2 and isinstance(docs[0], dict) and "spec" in docs[0]:
            docs = docs[1:]  # a `spec:` header document (CI/CD inputs), then the configuration
        if len(docs) > 1:
            raise InputError(f"{name}: invalid YAML: expected one document, found {len(docs)} (separated by ---)")
        data = docs[0] if docs else None
        _check_acyclic(data, name)
        return data
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and "tag" not in problem:
            problem = f"{problem} ({exc.context})"
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise InputError(f"{where}: invalid YAML: {' '.join(problem.split())}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InputError(f"{name}: invalid YAML: nested too deeply") from None
    except UnicodeEncodeError as exc:
        raise InputError(f"{name}: invalid YAML: {_not_utf8(text, exc)}") from None
    finally:
        loader.dispose()


def _not_utf8(text: str, exc: UnicodeEncodeError) -> str:
    return f"unacceptable character #x{ord(text[exc.start]):04x} (not UTF-8) at position {exc.start}"


def _check_acyclic(data: Any, name: str) -> None:
    """Refuse a YAML alias that contains itself (GitLab rejects it too); shared aliases are fine."""
    done: set[int] = set()
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, leaving = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if leaving:
            active.discard(id(node))
            done.add(id(node))
            continue
        if id(node) in done:
            continue
        if id(node) in active:
            line = getattr(node, "line", 0)
            raise InputError(f"{name}:{line}: invalid YAML: an alias refers to a mapping or list that contains it")
        active.add(id(node))
        stack.append((node, True))
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, False) for child in children)
