"""ClusterState's RTT source and user areas: ``attach_rtt`` keeps ``rtt_ms`` and adds the
``rtt`` source plugins read; ``attach_rtt_source`` takes matrices or coordinates; areas
are named, need a point, and copies do not share redefinitions."""

from __future__ import annotations

import numpy as np
import pytest

from harmonia.model import GeoPoint
from harmonia.sched import StateError
from harmonia.sched.rtt import CoordinateRtt, MatrixRtt
from harmonia.sched.state import Area
from tests.builders import make_node, make_state


def test_attach_rtt_gives_a_source_in_state_order() -> None:
    state = make_state([make_node("a"), make_node("b"), make_node("c")])
    state.attach_rtt(["c", "a", "b"], [[0, 1, 2], [10, 0, 12], [20, 21, 0]])
    assert state.rtt is not None and state.rtt_ms is not None
    assert state.rtt.names == ("a", "b", "c")
    assert state.rtt.row(0).tolist() == [0, 12, 10] == state.rtt_ms[0].tolist()
    assert state.rtt.rows([2]).tolist() == [[1, 2, 0]]


def test_attach_rtt_source_with_coordinates_has_no_matrix() -> None:
    state = make_state([make_node("a"), make_node("b")])
    source = CoordinateRtt(["b", "a"], [[0.0, 0.0], [3.0, 4.0]], [1.0, 0.5])
    state.attach_rtt_source(source)
    assert state.rtt_ms is None
    assert state.rtt is not None and state.rtt.names == ("a", "b")
    assert state.rtt.row(0).tolist() == [0, 6.5]  # |(3,4)| = 5, + heights 0.5 + 1


def test_attach_rtt_source_with_a_matrix_keeps_rtt_ms() -> None:
    state = make_state([make_node("a"), make_node("b")])
    state.attach_rtt_source(MatrixRtt(["b", "a", "x"], [[0, 1, 2], [3, 0, 4], [5, 6, 0]]))
    assert state.rtt_ms is not None and state.rtt_ms.tolist() == [[0, 3], [1, 0]]


def test_attach_rtt_source_must_cover_every_node() -> None:
    state = make_state([make_node("a"), make_node("b")])
    with pytest.raises(StateError, match="RTT source lacks nodes: b"):
        state.attach_rtt_source(MatrixRtt(["a"], np.zeros((1, 1))))
    assert state.rtt is None


def test_areas_need_a_name_and_a_point() -> None:
    with pytest.raises(StateError, match="needs a name"):
        Area("", (GeoPoint(lat=1, long=2),))
    with pytest.raises(StateError, match="'home' needs at least one point"):
        Area("home", ())


def test_areas_are_named_and_copies_keep_their_own() -> None:
    state = make_state(1)
    home = Area("home", (GeoPoint(lat=1, long=2),))
    state.add_area(home)
    copy = state.copy()
    copy.add_area(Area("home", (GeoPoint(lat=3, long=4),)))
    copy.add_area(Area("work", (GeoPoint(lat=5, long=6),)))
    assert state.areas == {"home": home}
    assert sorted(copy.areas) == ["home", "work"]
