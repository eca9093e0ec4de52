"""Reading and writing the files the CLI works with.

Decoding and validation live in :mod:`harmonia.model.documents`; this module only moves
text between disk and those functions, and turns I/O failures into :class:`InputError`
so every command reports them the same way (exit code 2, no traceback).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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
from harmonia.model.topology import Topology
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


def read_rtt(matrix: Path, index: Path, nodes: Sequence[str]) -> Topology:
    """The RTT matrix of ``--rtt`` and its ``--rtt-index``, checked to cover ``nodes``.

    The kubernetes-edge-scheduler's static format (see
    :meth:`~harmonia.model.topology.Topology.from_matrix_text`). Every problem names the
    file it is in: ``rtt.txt line 3: expected 5 values, got 4``,
    ``index.json["edge-1"]: row 7 out of range 0..4``. The matrix may cover more nodes
    than the node list (a measurement of a larger fleet), not fewer.
    """
    texts = (read_text_file(matrix), read_text_file(index))
    try:
        topology = Topology.from_matrix_text(*texts)
    except InputError as exc:
        raise InputError(
            [_in_rtt_file(error, matrix, index) for error in exc.errors], "--rtt/--rtt-index"
        ) from None
    missing = [name for name in nodes if name not in topology]
    if missing:
        shown = ", ".join(repr(name) for name in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InputError(
            [FieldError("", f"has no row for {len(missing)} node(s) of --nodes: {shown}{more}")],
            str(index),
        )
    return topology


def _in_rtt_file(error: FieldError, matrix: Path, index: Path) -> FieldError:
    """``error`` of :meth:`Topology.from_matrix_text` with its path naming the file."""
    for prefix, path in (("matrix", matrix), ("index", index)):
        if error.path.startswith(prefix):
            return FieldError(f"{path}{error.path[len(prefix) :]}", error.message)
    return error


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
