"""GitLab's GraphQL API (``POST /api/graphql``), the part cidash reads: a project by full path and its pipelines by
iid, as many as a query names (aliases), with GitLab's limits.

What it follows in GitLab's code (``app/graphql``): ``Query.project(fullPath: ID!)``; ``Project.pipeline(iid:
ID)`` (``Resolvers::ProjectPipelineResolver``, null when the project has no such pipeline); the ``Pipeline``
fields of ``Types::Ci::PipelineType`` listed in :data:`PIPELINE_FIELDS`, times as ``Types::TimeType`` prints
them (``Time#iso8601``: whole seconds, ``Z``), ``queuedDuration`` as ``Types::DurationType`` (float seconds),
``status`` as ``PipelineStatusEnum`` (upper case), ``id`` a global ID. A query's complexity is each field's 1 plus
its children's (``Types::BaseField``: a resolver's field counts its resolver's 1 and its children), refused over
250 for a signed-in user and 200 for an anonymous one (``GitlabSchema``), with graphql-ruby's message. A CI job
token signs nobody in (``Gitlab::Auth::RequestAuthenticator#find_user_for_graphql_api_request``): the query runs
anonymously and a private project (every simulated one) is null. Errors come with status 200, as GitLab's.

Only the query language's plain subset is read (an optional ``query`` with variables, fields, aliases and
arguments; no fragments or directives: a parse error) and only the fields above exist: anything else is
GraphQL's "doesn't exist" error, as GitLab's answer for a field it does not have.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cidash.sim.api.base import ApiBase, Json, Request, Response, _dumps
from cidash.sim.world import SimPipeline, SimProject

AUTHENTICATED_MAX_COMPLEXITY = 250
ANONYMOUS_MAX_COMPLEXITY = 200

PIPELINE_FIELDS = (
    "id",
    "iid",
    "sha",
    "ref",
    "status",
    "duration",
    "queuedDuration",
    "createdAt",
    "updatedAt",
    "startedAt",
    "finishedAt",
)
PROJECT_FIELDS = ("id", "fullPath", "name", "pipeline")
#: Each type's fields, and the type of the fields that hold an object (the others are scalars).
_TYPE_FIELDS = {"Query": ("project",), "Project": PROJECT_FIELDS, "Pipeline": PIPELINE_FIELDS}
_OBJECT_FIELDS = {"project": "Project", "pipeline": "Pipeline"}

_TOKEN = re.compile(
    r"""(?P<skip>[\s,\ufeff]+|\#[^\n\r]*)
    |(?P<punct>\.\.\.|[!$():=@\[\]{}|])
    |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
    |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<string>"(?:[^"\\\n\r]|\\.)*")""",
    re.VERBOSE,
)


class GraphQLError(Exception):
    """A query GitLab would refuse: its message, as the answer's ``errors[0].message``."""


@dataclass
class _Field:
    alias: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)  # a variable is ("$", name)
    children: list[_Field] = field(default_factory=list)

    def complexity(self) -> int:
        return 1 + sum(child.complexity() for child in self.children)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise GraphQLError(f'Parse error on "{text[pos : pos + 10]}" at offset {pos}')
            pos = m.end()
            kind = m.lastgroup or ""
            if kind != "skip":
                self.tokens.append((kind, m.group()))
        self.i = 0

    def peek(self) -> str:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else ""

    def take(self, want: str | None = None, kind: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise GraphQLError("Unexpected end of document")
        got_kind, got = self.tokens[self.i]
        if (want is not None and got != want) or (kind is not None and got_kind != kind):
            raise GraphQLError(f'Parse error on "{got[:20]}" ({got_kind.upper()})')
        self.i += 1
        return got

    def document(self) -> tuple[list[_Field], dict[str, Any]]:
        defaults: dict[str, Any] = {}
        if self.peek() == "query":
            self.take()
            if self.peek() not in ("(", "{"):
                self.take(kind="name")
            if self.peek() == "(":
                self.take("(")
                while self.peek() != ")":
                    self.take("$")
                    name = self.take(kind="name")
                    self.take(":")
                    self.type_ref()
                    if self.peek() == "=":
                        self.take("=")
                        defaults[name] = self.value()
                self.take(")")
        fields = self.selections()
        if self.i != len(self.tokens):
            raise GraphQLError(f'Parse error on "{self.peek()[:20]}"')
        return fields, defaults

    def type_ref(self) -> None:
        if self.peek() == "[":
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.peek() == "!":
            self.take("!")

    def selections(self) -> list[_Field]:
        self.take("{")
        out: list[_Field] = []
        while self.peek() != "}":
            out.append(self.selection())
        self.take("}")
        if not out:
            raise GraphQLError('Parse error on "}" (RCURLY)')
        return out

    def selection(self) -> _Field:
        name = self.take(kind="name")
        alias = name
        if self.peek() == ":":
            self.take(":")
            name = self.take(kind="name")
        f = _Field(alias, name)
        if self.peek() == "(":
            self.take("(")
            while self.peek() != ")":
                arg = self.take(kind="name")
                self.take(":")
                f.args[arg] = self.value()
            self.take(")")
        if self.peek() == "{":
            f.children = self.selections()
        return f

    def value(self) -> Any:
        if self.peek() == "$":
            self.take("$")
            return ("$", self.take(kind="name"))
        kind, text = self.tokens[self.i] if self.i < len(self.tokens) else ("", "")
        self.take()
        if kind == "string":
            return json.loads(text)
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        raise GraphQLError(f'Parse error on "{text[:20]}"')


def _check(fields: list[_Field], type_name: str) -> None:
    """GraphQL's "doesn't exist" error for the first field ``type_name`` (or an object field's type) lacks."""
    for f in fields:
        if f.name not in _TYPE_FIELDS[type_name]:
            raise GraphQLError(f"Field '{f.name}' doesn't exist on type '{type_name}'")
        if f.name in _OBJECT_FIELDS:
            _check(f.children, _OBJECT_FIELDS[f.name])


def _time(t: float | None) -> str | None:
    """``Types::TimeType``: ``Time#iso8601``, whole seconds."""
    if t is None:
        return None
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphQLApi(ApiBase):
    def graphql(self, req: Request) -> Json:
        try:
            return {"data": self._execute(req)}
        except GraphQLError as exc:
            return Response(200, _dumps({"errors": [{"message": str(exc)}]}), {})

    def _execute(self, req: Request) -> dict[str, Any]:
        body = req.json_body()
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise GraphQLError("No query string was present")
        fields, defaults = _Parser(query).document()
        given = body.get("variables") or {}
        variables = {**defaults, **(given if isinstance(given, dict) else {})}
        limit = AUTHENTICATED_MAX_COMPLEXITY if req.user != "anonymous" else ANONYMOUS_MAX_COMPLEXITY
        complexity = sum(f.complexity() for f in fields)
        if complexity > limit:
            raise GraphQLError(f"Query has complexity of {complexity}, which exceeds max complexity of {limit}")
        _check(fields, "Query")
        out: dict[str, Any] = {}
        for f in fields:
            path = self._arg(f, "fullPath", variables)
            project = self.world.project(str(path)) if isinstance(path, str) and not path.isdigit() else None
            if project is None or req.user == "anonymous":  # every simulated project is private
                out[f.alias] = None
            else:
                out[f.alias] = self._project_node(project, f.children, variables)
        return out

    @staticmethod
    def _arg(f: _Field, name: str, variables: dict[str, Any]) -> Any:
        value = f.args.get(name)
        if isinstance(value, tuple):
            if value[1] not in variables:
                raise GraphQLError(f"Variable ${value[1]} of type ID! was provided invalid value")
            return variables[value[1]]
        return value

    def _project_node(self, project: SimProject, fields: list[_Field], variables: dict[str, Any]) -> dict[str, Any]:
        by_iid: dict[int, SimPipeline] | None = None
        out: dict[str, Any] = {}
        for f in fields:
            if f.name == "pipeline":
                if by_iid is None:
                    by_iid = {p.iid: p for p in project.pipelines.values() if p.created_at <= self.now}
                iid = self._arg(f, "iid", variables)
                found = by_iid.get(int(iid)) if isinstance(iid, (str, int)) and str(iid).isdigit() else None
                out[f.alias] = None if found is None else self._pipeline_node(project, found, f.children)
            else:
                out[f.alias] = {"id": f"gid://gitlab/Project/{project.id}", "fullPath": project.path}.get(
                    f.name, project.path.rsplit("/", 1)[-1]
                )
        return out

    def _pipeline_node(self, project: SimProject, pipeline: SimPipeline, fields: list[_Field]) -> dict[str, Any]:
        now = self.now
        started, finished, updated = self.world.pipeline_times(project, pipeline, now)
        duration, queued = self.pipeline_durations(pipeline, started, finished, now)
        # The REST record's values (a hostile-numbers mode corrupts them there, and so here), in GraphQL's shapes.
        rest = self._hostile(
            "pipeline",
            {
                "id": pipeline.id,
                "started_at": started,
                "finished_at": finished,
                "duration": duration,
                "queued_duration": queued,
            },
        )
        values = {
            "id": f"gid://gitlab/Ci::Pipeline/{pipeline.id}",
            "iid": str(pipeline.iid),
            "sha": pipeline.sha,
            "ref": pipeline.ref,
            "status": self.world.pipeline_status(project, pipeline, now).upper(),
            "duration": rest["duration"],
            "queuedDuration": rest["queued_duration"],
            "createdAt": _time(pipeline.created_at),
            "updatedAt": _time(updated),
            "startedAt": _shown(rest["started_at"]),
            "finishedAt": _shown(rest["finished_at"]),
        }
        return {f.alias: values[f.name] for f in fields}


def _shown(value: Any) -> Any:
    """A time as GraphQL prints it; a value the hostile mode put in its place, as it is."""
    return _time(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
