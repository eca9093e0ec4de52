"""Policies run unchanged in the simulator, and their ranking is predictable."""

from __future__ import annotations

import pytest

from harmonia.sched import policy_names
from tests.sim.helpers import borg_task, conserved, make_infra, merge, run


def small_tasks(count: int) -> list:
    return merge(
        *[
            borg_task(f"job{i}.0", submit=float(i), schedule=float(i), cpu=500, mem=512)
            for i in range(count)
        ]
    )


def test_binpack_uses_fewer_nodes_than_spread() -> None:
    # 20 equal nodes of 4 cores, 16 tasks of 0.5 core: binpack fills 2 nodes (8 per
    # node), spread (least allocated) puts one task on each of 16 nodes.
    infra = make_infra(20)
    used = {
        policy: run(infra, small_tasks(16), policy=policy).metrics["nodes"]["used_max"]
        for policy in ("binpack", "spread", "default")
    }
    assert used["binpack"] == 2
    assert used["spread"] == 16
    assert used["default"] == 16
    assert used["binpack"] < used["default"]


@pytest.mark.parametrize("policy", policy_names())
def test_every_registered_policy_replays_a_trace(policy: str) -> None:
    result = run(make_infra(6), small_tasks(30), policy=policy)
    assert result.metrics["policy"]["name"] == policy
    assert result.metrics["tasks"]["scheduled"] == 30  # 30 × 0.5 core fit in 6 × 4 cores
    assert result.metrics["policy"]["decisions"] == 30
    assert result.metrics["policy"]["decision_us_mean"] > 0
    assert conserved(result)
