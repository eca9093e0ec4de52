"""The simulator's fit memo: cached answers follow reservations, releases and node health."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import PlacementRequest
from harmonia.sched import ClusterState
from harmonia.sched.state import CPU, MEMORY
from harmonia.sim import capacity
from harmonia.sim.capacity import STORAGE, Capacity
from tests.builders import make_node


def request(cpu: int, mem: int = 0, disk: int = 0, name: str = "r") -> PlacementRequest:
    return PlacementRequest(id=name, cpu_m=cpu, memory_mib=mem, storage_mib=disk)


def make_capacity(nodes: int = 3, cpu: int = 4000, mem: int = 8192) -> Capacity:
    state = ClusterState([make_node(f"n{i}", cpu=cpu, mem=mem, storage=1000) for i in range(nodes)])
    return Capacity(state, state.schedulable.copy())


def brute_force(cap: Capacity, cpu: int, mem: int, disk: int) -> bool:
    free = cap.state.free
    mask = (free[:, CPU] >= cpu) & (free[:, MEMORY] >= mem) & cap.placeable
    if disk:
        mask &= free[:, STORAGE] >= disk
    return bool(mask.any())


def test_a_fit_is_rechecked_after_its_node_fills() -> None:
    cap = make_capacity(nodes=2)
    assert cap.fits_somewhere(3000, 0, 0)  # memoized with the first node that fits
    cap.state.reserve(0, request(2000))
    assert cap.fits_somewhere(3000, 0, 0)  # the other node still has room
    cap.state.reserve(1, request(2000))
    assert not cap.fits_somewhere(3000, 0, 0)


def test_a_misfit_changes_after_a_release_on_another_node() -> None:
    cap = make_capacity(nodes=3)
    for node in range(3):
        cap.state.reserve(node, request(3000))
    assert not cap.fits_somewhere(2000, 0, 0)
    cap.state.reserve(0, request(500))  # reservations leave a misfit a misfit
    assert not cap.fits_somewhere(2000, 0, 0)
    cap.state.release(2, request(3000))
    cap.grew(2)
    assert cap.fits_somewhere(2000, 0, 0)
    # and the answer follows that node again when it fills up
    cap.state.reserve(2, request(3000))
    assert not cap.fits_somewhere(2000, 0, 0)


def test_node_health_changes_the_cached_answers() -> None:
    cap = make_capacity(nodes=2)
    cap.state.reserve(1, request(4000))
    assert cap.fits_somewhere(1000, 0, 0)  # only node 0 has room
    cap.set_placeable(0, False)
    assert not cap.fits_somewhere(1000, 0, 0)
    cap.set_placeable(0, True)
    assert cap.fits_somewhere(1000, 0, 0)


def test_storage_is_checked_only_when_requested() -> None:
    cap = make_capacity(nodes=1)
    assert cap.fits_somewhere(1000, 0, 1000)
    assert not cap.fits_somewhere(1000, 0, 1001)
    cap.state.reserve(0, request(0, disk=600))
    assert not cap.fits_somewhere(1000, 0, 1000)
    assert cap.fits_somewhere(1000, 0, 0)


def test_growth_makes_the_free_bound_an_upper_bound_again() -> None:
    cap = make_capacity(nodes=2)
    assert cap.bound == [4000, 8192]
    cap.state.reserve(0, request(4000, 8192))
    cap.state.reserve(1, request(3000, 1000))
    cap.exact_bound()
    assert cap.bound == [1000, 7192]
    cap.state.release(0, request(4000, 8192))
    cap.grew(0)
    assert cap.bound == [4000, 8192]
    cap.set_placeable(0, False)
    cap.set_placeable(1, False)
    cap.exact_bound()
    assert cap.bound == [-1, -1]


@pytest.mark.parametrize(("recheck", "log"), [(32, 1 << 16), (2, 5)])
def test_answers_match_a_full_scan_through_random_changes(
    monkeypatch: pytest.MonkeyPatch, recheck: int, log: int
) -> None:
    # Small limits exercise the paths that drop the log and rescan.
    monkeypatch.setattr(capacity, "RECHECK_LIMIT", recheck)
    monkeypatch.setattr(capacity, "GROWTH_LOG_LIMIT", log)
    rng = np.random.default_rng(3)
    cap = make_capacity(nodes=6, cpu=4000, mem=4000)
    placed: list[tuple[int, PlacementRequest]] = []
    shapes = [(500, 500, 0), (1500, 1000, 0), (3000, 500, 0), (1000, 3500, 0), (800, 0, 400)]
    for step in range(3000):
        action = rng.random()
        node = int(rng.integers(6))
        if action < 0.45:
            wanted = request(
                int(rng.integers(1, 8)) * 250, int(rng.integers(0, 8)) * 250, name=f"t{step}"
            )
            free = cap.state.free
            if free[node, CPU] >= wanted.cpu_m and free[node, MEMORY] >= wanted.memory_mib:
                cap.state.reserve(node, wanted)
                placed.append((node, wanted))
        elif action < 0.85 and placed:
            node, done = placed.pop(int(rng.integers(len(placed))))
            cap.state.release(node, done)
            cap.grew(node)
        else:
            cap.set_placeable(node, bool(rng.random() < 0.7))
        cpu, mem, disk = shapes[int(rng.integers(len(shapes)))]
        assert cap.fits_somewhere(cpu, mem, disk) == brute_force(cap, cpu, mem, disk), step
