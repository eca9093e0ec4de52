"""Reading and writing the files the CLI works with.

Decoding and validation live in :mod:`harmonia.model.documents`; this module only moves
text between disk and those functions, and turns I/O failures into :class:`InputError`
so every command reports them the same way (exit code 2, no traceback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harmonia.model import FieldError, InputError, Node, PlacementRequest
from harmonia.model.documents import (
    NodeList,
    is_sla_descriptor,
    load_document,
    parse_nodes,
    parse_requests,
)
from harmonia.model.sla import SLADescriptor, parse_sla
from harmonia.traces.source import read_text_file


def read_document(path: Path) -> object:
    return load_document(read_text_file(path), str(path))


def read_nodes(path: Path) -> NodeList:
    return parse_nodes(read_document(path), str(path))


def read_workload(path: Path) -> list[PlacementRequest]:
    """Requests from an SLA descriptor (one per replica) or from a request list."""
    data = read_document(path)
    if is_sla_descriptor(data):
        return requests_of(parse_sla(data, str(path)), path)
    return parse_requests(data, str(path))


def requests_of(descriptor: SLADescriptor, path: Path) -> list[PlacementRequest]:
    """The descriptor's requests; a refusal names the file like a parse error does."""
    try:
        return descriptor.to_requests()
    except InputError as exc:
        raise InputError(exc.errors, str(path)) from None


def write_document(path: Path, data: Any) -> None:
    """Write JSON, or YAML when the file name ends in .yaml/.yml."""
    if path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    else:
        text = json.dumps(data, indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(
            [FieldError("", f"cannot be written: {exc.strerror}")], str(path)
        ) from None


def node_document(nodes: NodeList) -> dict[str, Any]:
    """The node-list document ``harmonia nodes generate`` writes."""
    return {
        "clusters": [c.model_dump(mode="json", exclude_none=True) for c in nodes.clusters],
        "nodes": [_node_dict(n) for n in nodes.nodes],
    }


def _node_dict(node: Node) -> dict[str, Any]:
    data = node.model_dump(mode="json", exclude_none=True)
    if not data.get("taints"):
        data.pop("taints", None)
    if not data.get("unschedulable"):
        data.pop("unschedulable", None)
    return data
