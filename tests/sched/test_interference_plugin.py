"""The Interference score plugin and the ``interference`` policy, on a hand-made table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harmonia.model import PlacementRequest, QoSClass
from harmonia.sched import ClusterState, Scheduler
from harmonia.sched.framework import SKIP, Code
from harmonia.sched.interference.table import InterferenceTable, configurations
from harmonia.sched.plugins import InterferenceScore
from harmonia.sched.plugins.interference import APP_LABEL, TABLE_ENV
from harmonia.sched.policies import get_policy
from harmonia.sched.state import FloatArray
from tests.builders import make_cycle, make_state, place

CAPACITY = 3


def _table() -> InterferenceTable:
    """Two apps, web and cache, at most 3 containers a node. A web container runs at 1.0
    alone, 0.5 beside another web, and 1.5 beside a cache; caches run at 1.0, 0.9 when
    two share a node."""
    configs = configurations(2, CAPACITY)
    web, cache = configs[:, 0], configs[:, 1]
    per_web = np.where(cache > 0, 1.5, np.where(web > 1, 0.5, 1.0))
    per_cache = np.where(cache > 1, 0.9, 1.0)
    per_container = np.stack([per_web, per_cache], axis=1)
    return InterferenceTable(
        configs=configs,
        per_container=per_container,
        measured=np.ones(len(configs), dtype=bool),
        capacity=CAPACITY,
        app_names=("web", "cache"),
    )


def lra(
    id: str, app: str | None, service: str = "", qos: QoSClass = QoSClass.LRA
) -> PlacementRequest:
    labels = {APP_LABEL: app} if app is not None else {}
    return PlacementRequest(
        id=id, service=service, qos_class=qos, labels=labels, cpu_m=100, memory_mib=100
    )


def _scores(
    plugin: InterferenceScore, state: ClusterState, request: PlacementRequest
) -> FloatArray:
    cycle = make_cycle(state, request)
    assert plugin.pre_filter(state, cycle).ok
    feasible = np.ones(len(state), dtype=bool)
    assert plugin.pre_score(state, cycle, feasible).ok
    return plugin.score(state, cycle, feasible)


def test_prefers_the_node_with_the_best_marginal_gain() -> None:
    plugin = InterferenceScore(_table(), services={"db": "cache"})
    state = make_state(3)
    place(state, "n0", lra("w0", "web", "front"))  # n0: one web
    place(state, "n1", lra("c0", "cache", "db"))  # n1: one cache
    # n2 empty. The plugin learns front → web from the request it scores.
    scores = _scores(plugin, state, lra("w1", "web", "front"))
    np.testing.assert_array_equal(plugin.counts(state), [[1, 0], [0, 1], [0, 0]])
    # gains by hand: n0 (1 web → 2 webs) 2*0.5 - 1.0 = 0.0; n1 (cache → web+cache)
    # (1.5 + 1.0) - 1.0 = 1.5; n2 (empty → one web) 1.0. Normalized over 0..1.5.
    np.testing.assert_allclose(scores, [0.0, 100.0, 100.0 * 1.0 / 1.5])


def test_full_node_scores_zero_and_ties_score_full() -> None:
    plugin = InterferenceScore(_table(), services={"front": 0, "db": 1})
    state = make_state(2)
    for i in range(3):
        place(state, "n0", lra(f"c{i}", "cache", "db"))  # n0 at capacity 3
    scores = _scores(plugin, state, lra("w", "web", "front"))
    np.testing.assert_array_equal(scores, [0.0, 100.0])


def test_released_instances_leave_the_counts() -> None:
    plugin = InterferenceScore(_table())
    state = make_state(2)
    web = lra("w0", "web", "front")
    place(state, "n0", web)
    _scores(plugin, state, lra("w1", "web", "front"))
    assert plugin.counts(state)[0, 0] == 1
    state.release(0, web)  # the host releases; no plugin is told
    assert plugin.counts(state)[0, 0] == 0


def test_other_requests_skip_and_bad_labels_are_refused() -> None:
    plugin = InterferenceScore(_table())
    state = make_state(2)
    feasible = np.ones(2, dtype=bool)
    for request in (lra("a", None), lra("b", "web", qos=QoSClass.BE)):
        cycle = make_cycle(state, request)
        assert plugin.pre_filter(state, cycle) is SKIP
        assert plugin.pre_score(state, cycle, feasible) is SKIP
    status = plugin.pre_filter(state, make_cycle(state, lra("c", "nginx")))
    assert status.code is Code.UNRESOLVABLE and "nginx" in status.reasons[0]
    assert plugin.pre_filter(state, make_cycle(state, lra("d", "web", "s"))).ok
    status = plugin.pre_filter(state, make_cycle(state, lra("e", "cache", "s")))
    assert status.code is Code.UNRESOLVABLE and "'s' was labelled" in status.reasons[0]


def test_interference_policy_places_beside_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "table.npz"
    _table().save(path)
    monkeypatch.setenv(TABLE_ENV, str(path))
    state = make_state(3)
    scheduler = Scheduler(state, get_policy("interference"))
    cache = scheduler.schedule(lra("c0", "cache", "db"))
    assert cache.placed
    # A web container gains 1.5 beside the cache and 1.0 alone: the model outweighs the
    # load scores that keep default away from the node already used.
    web = scheduler.schedule(lra("w0", "web", "front"))
    assert web.node is not None and web.node == cache.node
    default = Scheduler(state.copy(), get_policy("default"))
    default.state.release(default.state.node_index(web.node), lra("w0", "web", "front"))
    assert default.schedule(lra("w0", "web", "front")).node != cache.node


def test_interference_policy_without_a_table_is_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TABLE_ENV, raising=False)
    state = make_state(2)
    decision = Scheduler(state, get_policy("interference")).schedule(lra("w", "web", "f"))
    assert decision.placed
