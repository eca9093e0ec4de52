"""Decoding of user documents (JSON or YAML text) and of node and request lists.

The CLI and the control plane read files and request bodies; the functions here turn
their text into validated model objects, raising :class:`InputError` with every problem
and its JSON path. No I/O happens here.

Node list: a list of nodes, or an object ``{"clusters": [...], "nodes": [...]}`` as
``harmonia nodes generate`` writes. Request list: a list of
:class:`~harmonia.model.request.PlacementRequest` objects, or ``{"requests": [...]}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml
from pydantic import TypeAdapter, ValidationError

from harmonia.model.errors import FieldError, InputError, from_pydantic
from harmonia.model.node import Cluster, Node
from harmonia.model.request import PlacementRequest


@dataclass(frozen=True)
class NodeList:
    nodes: list[Node]
    clusters: list[Cluster] = field(default_factory=list)


_NODES = TypeAdapter(list[Node])
_CLUSTERS = TypeAdapter(list[Cluster])
_REQUESTS = TypeAdapter(list[PlacementRequest])


def parse_nodes(data: object, source: str = "") -> NodeList:
    """Validate a decoded node list; names must be unique and clusters known if listed."""
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"nodes", "clusters"})
        if unknown:
            raise InputError([FieldError(k, "unknown field") for k in unknown], source)
        if "nodes" not in data:
            raise InputError([FieldError("nodes", "is required")], source)
        raw_nodes, raw_clusters, prefix = data["nodes"], data.get("clusters", []), "nodes"
    elif isinstance(data, list):
        raw_nodes, raw_clusters, prefix = data, [], ""
    else:
        what = "empty document" if data is None else f"got {type(data).__name__}"
        raise InputError([FieldError("", f"must be a list of nodes or an object ({what})")], source)
    errors: list[FieldError] = []
    nodes: list[Node] = []
    clusters: list[Cluster] = []
    try:
        nodes = _NODES.validate_python(raw_nodes)
    except ValidationError as exc:
        errors += from_pydantic(exc, prefix=prefix).errors
    try:
        clusters = _CLUSTERS.validate_python(raw_clusters)
    except ValidationError as exc:
        errors += from_pydantic(exc, prefix="clusters").errors
    cluster_names: set[str] = set()
    for i, cluster in enumerate(clusters):
        if cluster.name in cluster_names:
            errors.append(FieldError(f"clusters[{i}].name", f"duplicate cluster {cluster.name!r}"))
        cluster_names.add(cluster.name)
    seen: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.name in seen:
            path = f"{prefix}[{i}].name" if prefix else f"[{i}].name"
            errors.append(FieldError(path, f"duplicate node name {node.name!r}"))
        seen.setdefault(node.name, i)
    if clusters:
        known = {c.name for c in clusters}
        for i, node in enumerate(nodes):
            if node.cluster not in known:
                path = f"{prefix}[{i}].cluster" if prefix else f"[{i}].cluster"
                errors.append(FieldError(path, f"unknown cluster {node.cluster!r}"))
    if not errors and not nodes:
        errors.append(FieldError(prefix, "must list at least one node"))
    if errors:
        raise InputError(errors, source)
    return NodeList(nodes, clusters)


def parse_requests(data: object, source: str = "") -> list[PlacementRequest]:
    """Validate a decoded request list; request ids must be unique."""
    prefix = ""
    if isinstance(data, dict) and "requests" in data:
        unknown = sorted(set(data) - {"requests"})
        if unknown:
            raise InputError([FieldError(k, "unknown field") for k in unknown], source)
        data, prefix = data["requests"], "requests"
    if not isinstance(data, list):
        what = "empty document" if data is None else f"got {type(data).__name__}"
        raise InputError([FieldError(prefix, f"must be a list of requests ({what})")], source)
    try:
        requests = _REQUESTS.validate_python(data)
    except ValidationError as exc:
        raise from_pydantic(exc, prefix=prefix, source=source) from exc
    errors = []
    seen: set[str] = set()
    for i, request in enumerate(requests):
        if request.id in seen:
            path = f"{prefix}[{i}].id" if prefix else f"[{i}].id"
            errors.append(FieldError(path, f"duplicate request id {request.id!r}"))
        seen.add(request.id)
    if errors:
        raise InputError(errors, source)
    return requests


def is_sla_descriptor(data: object) -> bool:
    """Whether a decoded workload document is an SLA descriptor (not a request list)."""
    return isinstance(data, dict) and ("sla_version" in data or "applications" in data)


def load_document(text: str, source: str = "") -> object:
    """Decode JSON or YAML text into plain data; :class:`InputError` on a syntax error.

    Text that starts with ``{`` or ``[`` is tried as JSON first (PyYAML rejects some
    valid JSON, such as tab indentation). YAML is read with the safe loader, without
    YAML 1.1's base-60 numbers (so ``port: 22:22`` stays a string) and without aliases
    (so a small document cannot expand into a huge one).
    """
    json_error: json.JSONDecodeError | None = None
    try:
        if text.lstrip().startswith(("{", "[")):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                json_error = exc
        try:
            return yaml.load(text, Loader=_SafeLoader)
        except yaml.YAMLError as exc:
            if json_error is not None:
                message = (
                    f"invalid JSON at line {json_error.lineno}, column {json_error.colno}: "
                    f"{json_error.msg}"
                )
            else:
                message = _yaml_message(exc)
            raise InputError([FieldError("", message)], source) from exc
    except RecursionError:
        raise InputError([FieldError("", "document is nested too deeply")], source) from None


def _yaml_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "syntax error"
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"invalid YAML: {exc}"


class _SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases and without base-60 numbers."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in stubs
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


_INT_RE = re.compile(r"^[-+]?(?:0b[0-1_]+|0[0-7_]+|0|[1-9][0-9_]*|0x[0-9a-fA-F_]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"
    r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_SafeLoader.yaml_implicit_resolvers = {
    first: [
        (tag, _INT_RE if tag.endswith(":int") else _FLOAT_RE if tag.endswith(":float") else regexp)
        for tag, regexp in resolvers
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
