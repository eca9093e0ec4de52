"""The cached fast path makes exactly the decisions of the full path.

Two identical states, one scheduler with the row-local cache and one without
(``cache=False``), run the same random sequence of requests of a few shapes and
services, with constraints and tolerations, interleaved with host-side releases and
health and cordon changes. Every decision must be equal, field for field, and neither
state may be over-committed. A variant shrinks the change log and the refresh limit so
epoch bumps and full recomputes happen often.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pytest

from harmonia.model import (
    AntiAffinityConstraint,
    Constraint,
    DirectConstraint,
    LabelExpression,
    Node,
    NodeAffinityConstraint,
    PlacementRequest,
    PreferredTerm,
    Resources,
    Toleration,
)
from harmonia.sched import (
    ClusterState,
    Code,
    DelegatingScheduler,
    Scheduler,
    policy_names,
    scheduler_for,
)
from harmonia.sched import shapes as shapes_module
from harmonia.sched import state as state_module
from harmonia.sched.framework import CycleState, Profile
from harmonia.sched.plugins import NodeResourcesFit
from harmonia.sched.plugins import allocation as allocation_module
from harmonia.sched.state import BoolArray, FloatArray, NodeRow
from tests.builders import make_node, make_request, taint, toleration

CLUSTERS = ["c0", "c1", "c2"]
ZONES = ["z1", "z2", "z3"]
SERVICES = ["web", "db", "cache", ""]
# (cpu_m, memory_mib, gpu): a few shapes so the cache gets hits, one with a GPU
SHAPES = [
    (250, 256, 0),
    (500, 512, 0),
    (1000, 1024, 0),
    (2000, 4096, 0),
    (100, 0, 0),
    (0, 128, 0),
    (1000, 2048, 1),
]
TAINTS = [
    taint("dedicated", "batch"),
    taint("spot", effect="PreferNoSchedule"),
    taint("old", effect="PreferNoSchedule"),
]


def random_nodes(rng: random.Random) -> list[Node]:
    nodes = []
    for i in range(rng.randint(4, 30)):
        cpu = rng.choice([1000, 2000, 4000, 8000, 16000])
        mem = rng.choice([1024, 2048, 4096, 8192, 32768])
        gpu = rng.choice([0, 0, 0, 1, 2])
        allocatable = None
        if rng.random() < 0.3:  # system-reserved share, sometimes nothing of a resource
            allocatable = Resources(
                cpu_m=rng.choice([0, cpu // 2, cpu - 100]),
                memory_mib=rng.choice([mem // 2, mem - 256]),
                gpu=gpu,
            )
        labels = {"zone": rng.choice(ZONES)}
        if rng.random() < 0.3:
            labels["disk"] = "ssd"
        nodes.append(
            make_node(
                f"n{i}",
                cpu=cpu,
                mem=mem,
                gpu=gpu,
                cluster=rng.choice(CLUSTERS),  # not grouped: clusters interleave
                labels=labels,
                taints=[t for t in TAINTS if rng.random() < 0.15],
                allocatable=allocatable,
                unschedulable=rng.random() < 0.1,
            )
        )
    return nodes


def random_request(rng: random.Random, i: int) -> PlacementRequest:
    cpu, mem, gpu = rng.choice(SHAPES)
    service = rng.choice(SERVICES)
    constraints: list[Constraint] = []
    tolerations: list[Toleration] = []
    roll = rng.random()
    if roll < 0.1:
        constraints.append(NodeAffinityConstraint(match_labels={"zone": rng.choice(ZONES)}))
    elif roll < 0.2:
        constraints.append(
            NodeAffinityConstraint(
                expressions=(LabelExpression(key="disk", operator="Exists"),)
                if rng.random() < 0.5
                else (),
                preferred=(
                    PreferredTerm(
                        weight=rng.randint(1, 100), match_labels={"zone": rng.choice(ZONES)}
                    ),
                ),
            )
        )
    elif roll < 0.3 and service:
        constraints.append(
            AntiAffinityConstraint(
                scope=rng.choice(["node", "cluster"]), max_per_domain=rng.randint(1, 3)
            )
        )
    elif roll < 0.35:
        constraints.append(DirectConstraint(cluster=rng.choice(CLUSTERS)))
    if rng.random() < 0.3:
        tolerations.append(
            rng.choice(
                [
                    toleration("dedicated", "batch"),
                    toleration("spot"),
                    toleration(operator="Exists"),
                ]
            )
        )
    if rng.random() < 0.02:
        cpu = 10**6  # too big for any node: unresolvable
    return make_request(
        f"r{i}",
        cpu=cpu,
        mem=mem,
        gpu=gpu,
        service=service,
        constraints=constraints,
        tolerations=tolerations,
    )


@dataclass
class Run:
    """One state, its scheduler and what it has placed (node index, request)."""

    state: ClusterState
    scheduler: Scheduler | DelegatingScheduler
    placed: list[tuple[int, PlacementRequest]] = field(default_factory=list)


def run_lockstep(policy: str, seed: int, steps: int) -> tuple[Run, Run]:
    rng = random.Random(seed)
    nodes = random_nodes(rng)
    cached_state, full_state = ClusterState(nodes), ClusterState(nodes)
    # scheduler_for, as hosts build them: delegated policies get a DelegatingScheduler,
    # which must follow the host's direct changes to the state below.
    cached = Run(cached_state, scheduler_for(cached_state, policy, seed=seed))
    full = Run(full_state, scheduler_for(full_state, policy, seed=seed, cache=False))
    decisions = 0
    for step in range(steps):
        roll = rng.random()
        if roll < 0.3 and cached.placed:
            k = rng.randrange(len(cached.placed))
            for run in (cached, full):
                node, request = run.placed.pop(k)
                run.state.release(node, request)
        elif roll < 0.35:
            name, healthy = rng.choice(nodes).name, rng.random() < 0.6
            for run in (cached, full):
                run.state.set_healthy(name, healthy)
        elif roll < 0.4:
            name, cordoned = rng.choice(nodes).name, rng.random() < 0.4
            for run in (cached, full):
                run.state.set_cordoned(name, cordoned)
        else:
            request = random_request(rng, step)
            a = cached.scheduler.schedule(request)
            b = full.scheduler.schedule(request)
            assert a == b, f"step {step}: {a.summary()} != {b.summary()}"
            decisions += 1
            if a.node is not None:
                for run in (cached, full):
                    run.placed.append((run.state.node_index(a.node), request))
    assert decisions > steps // 3
    return cached, full


CASES = [
    pytest.param(policy, seed, tight, id=f"{policy}-{seed}{'-tight' if tight else ''}")
    for policy in [
        "default",
        "binpack",
        "spread",
        "random",
        "round-robin",
        "ratio",
        "latency",
        "latency-reliable",
        "interference",
        "rom",
        "ldp",
    ]
    for seed, tight in [(1, False), (2, False), (3, True), (4, True)]
]


@pytest.mark.parametrize(("policy", "seed", "tight"), CASES)
def test_cached_and_full_paths_decide_alike(
    policy: str, seed: int, tight: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tight:
        # Drop the change log every 7 changes and recompute past 2 changed rows.
        monkeypatch.setattr(state_module, "CHANGE_LOG_LIMIT", 7)
        monkeypatch.setattr(shapes_module, "ROW_REFRESH_LIMIT", 2)

    cached, full = run_lockstep(policy, seed, steps=400)

    assert cached.state.allocated.tolist() == full.state.allocated.tolist()
    for run in (cached, full):
        assert (run.state.allocated <= run.state.allocatable).all()
        assert (run.state.free >= 0).all()
        # The float64 mirrors the vector scores read follow every reserve and release.
        assert (run.state.free_f == run.state.free).all()
        assert (run.state.allocated_f == run.state.allocated).all()


def test_built_in_policies_are_all_exercised() -> None:
    assert {c.values[0] for c in CASES} == set(policy_names())


def test_outcomes_cover_every_code() -> None:
    # The random sequences must reach the interesting branches, or the comparison above
    # proves little: placed, unschedulable and unresolvable decisions all occur.
    rng = random.Random(1)
    state = ClusterState(random_nodes(rng))
    scheduler = Scheduler(state)
    codes = {scheduler.schedule(random_request(rng, i)).code for i in range(300)}
    assert {Code.OK, Code.UNSCHEDULABLE, Code.UNRESOLVABLE} <= codes


class _CachedScore:
    """A row-local score that hands out its own array each time (no fresh_scores)."""

    name = "CachedScore"
    row_local = True

    def __init__(self, n: int) -> None:
        self.values = np.arange(n, dtype=np.float64)

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        return self.values

    def score_node(self, row: NodeRow, cycle: CycleState) -> float:
        return float(row.node)


def test_the_shape_cache_never_writes_into_a_plugins_own_array() -> None:
    nodes = [make_node(f"n{i}", 1000, 1024) for i in range(6)]
    state = ClusterState(nodes)
    plugin = _CachedScore(len(nodes))
    profile = Profile(
        "own-array",
        [NodeResourcesFit(), plugin],
        {"CachedScore": 1},
    )
    scheduler = Scheduler(state, profile)
    # Node 5 scores highest; once full it is masked out of the entry, not of the plugin.
    for i in range(3):
        decision = scheduler.schedule(make_request(f"r{i}", 600, 100))
        assert decision.node == f"n{5 - i}"
    assert plugin.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize("divisor", [1, 2, 3, 4, 6, 8, 1024])
def test_in_place_division_by_a_weight_sum_equals_true_division(divisor: int) -> None:
    rng = np.random.default_rng(divisor)
    values = np.floor(rng.random(10_000) * 1e6)
    expected = values / divisor
    allocation_module._divide(values, divisor)
    assert np.array_equal(values, expected)
