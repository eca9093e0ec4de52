"""Small builders for scheduling-core tests: nodes, requests, states and cycle states.

Defaults are a plain 4-core, 8 GiB node in cluster ``c0`` and an empty request, so a test
spells out only the numbers it is about: ``make_node("n0", cpu=2000)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from harmonia.model import (
    Constraint,
    GeoPoint,
    Node,
    NodeRole,
    PlacementRequest,
    Resources,
    Taint,
    TaintEffect,
    Toleration,
)
from harmonia.sched import ClusterState, CycleState
from harmonia.sched.state import request_amounts


def make_node(
    name: str,
    cpu: int = 4000,
    mem: int = 8192,
    *,
    cluster: str = "c0",
    gpu: int = 0,
    storage: int = 0,
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Taint] = (),
    allocatable: Resources | None = None,
    role: NodeRole = NodeRole.CLOUD,
    location: tuple[float, float] | None = None,
    unschedulable: bool = False,
    node_class: str = "",
) -> Node:
    return Node(
        name=name,
        cluster=cluster,
        role=role,
        node_class=node_class,
        labels=dict(labels or {}),
        taints=tuple(taints),
        capacity=Resources(cpu_m=cpu, memory_mib=mem, gpu=gpu, storage_mib=storage),
        allocatable=allocatable,
        location=GeoPoint(lat=location[0], long=location[1]) if location else None,
        unschedulable=unschedulable,
    )


def make_request(
    id: str = "r",
    cpu: int = 0,
    mem: int = 0,
    *,
    service: str = "",
    gpu: int = 0,
    storage: int = 0,
    constraints: Iterable[Constraint] = (),
    tolerations: Iterable[Toleration] = (),
    labels: dict[str, str] | None = None,
) -> PlacementRequest:
    return PlacementRequest(
        id=id,
        service=service,
        labels=labels or {},
        cpu_m=cpu,
        memory_mib=mem,
        gpu=gpu,
        storage_mib=storage,
        constraints=tuple(constraints),
        tolerations=tuple(tolerations),
    )


def make_state(nodes: Sequence[Node] | int) -> ClusterState:
    """A state over ``nodes``, or over that many default nodes ``n0..n{k-1}``."""
    if isinstance(nodes, int):
        nodes = [make_node(f"n{i}") for i in range(nodes)]
    return ClusterState(nodes)


def make_cycle(state: ClusterState, request: PlacementRequest, *, seed: int = 0) -> CycleState:
    """The cycle state the scheduler builds for ``request`` (``state`` is for symmetry)."""
    del state
    amounts = request_amounts(request)
    return CycleState(
        request=request,
        vector=np.array(amounts, dtype=np.int64),
        amounts=amounts,
        requested=tuple(i for i, v in enumerate(amounts) if v),
        rng=np.random.default_rng(seed),
    )


def place(state: ClusterState, node: str, request: PlacementRequest) -> None:
    """Reserve ``request`` on the node named ``node``, as a host applying a plan does."""
    state.reserve(state.node_index(name=node), request)


def taint(key: str, value: str = "", effect: str = "NoSchedule") -> Taint:
    return Taint(key=key, value=value, effect=TaintEffect(effect))


def toleration(
    key: str = "", value: str = "", *, operator: str = "Equal", effect: str | None = None
) -> Toleration:
    return Toleration(
        key=key,
        operator=operator,
        value=value,
        effect=TaintEffect(effect) if effect else None,
    )
