"""Named policies: the built-ins, the plugin protocol every registered policy satisfies,
unknown names, registration in code and through the ``harmonia.policies`` entry points."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint

import pytest

from harmonia.model import HarmoniaError
from harmonia.sched import (
    ENTRY_POINT_GROUP,
    Profile,
    Scheduler,
    UnknownPolicyError,
    get_policy,
    policies,
    policy_names,
    register_policy,
)
from harmonia.sched.framework import (
    FilterPlugin,
    Plugin,
    RowLocalFilterPlugin,
    RowLocalScorePlugin,
    ScorePlugin,
    is_row_local_filter,
    is_row_local_score,
)
from harmonia.sched.plugins import NodeResourcesFit
from tests.builders import make_request, make_state
from tests.sched import fake_policy

BUILT_IN = ["binpack", "default", "random", "ratio", "round-robin", "spread"]


def test_built_in_policies_are_registered() -> None:
    assert set(BUILT_IN) <= set(policy_names())
    assert policy_names() == sorted(policy_names())


@pytest.mark.parametrize("name", policy_names())
def test_every_registered_policy_satisfies_the_plugin_protocol(name: str) -> None:
    profile = get_policy(name)

    assert isinstance(profile, Profile)
    assert profile.name == name
    assert profile.filters, "a policy needs a filter"
    for plugin in profile.plugins:
        assert isinstance(plugin, Plugin)
        assert isinstance(plugin.name, str) and plugin.name
        # every plugin takes part in some phase
        assert any(
            hasattr(plugin, phase)
            for phase in ("pre_filter", "filter", "pre_score", "score", "reserve", "permit", "bind")
        ), plugin.name
    for plugin in profile.filters:
        assert isinstance(plugin, FilterPlugin)
        assert callable(plugin.explain)
        if is_row_local_filter(plugin):
            assert isinstance(plugin, RowLocalFilterPlugin), plugin.name
    for plugin in profile.scores:
        assert isinstance(plugin, ScorePlugin)
        assert profile.weights[plugin.name] >= 1
        if is_row_local_score(plugin):
            assert isinstance(plugin, RowLocalScorePlugin), plugin.name
            assert not hasattr(plugin, "normalize") and not hasattr(plugin, "pre_score")
    # and it schedules
    assert Scheduler(make_state(2), profile).schedule(make_request(cpu=100)).placed


def test_each_call_builds_a_fresh_profile() -> None:
    # Plugins may keep state (RoundRobin's cursor) that must not leak between schedulers.
    first, second = get_policy("round-robin"), get_policy("round-robin")
    assert first is not second
    assert {id(p) for p in first.plugins}.isdisjoint(id(p) for p in second.plugins)
    state = make_state(3)
    Scheduler(state, "round-robin").schedule(make_request(cpu=1))
    assert Scheduler(state, "round-robin").schedule(make_request(cpu=1)).node == "n0"


def test_unknown_policy_lists_the_known_ones() -> None:
    with pytest.raises(UnknownPolicyError) as caught:
        get_policy("fastest")
    assert caught.value.name == "fastest"
    assert str(caught.value) == (
        f"unknown policy 'fastest'; known policies: {', '.join(policy_names())}"
    )
    assert isinstance(caught.value, HarmoniaError)


# -- behaviour of the built-ins -------------------------------------------------------------


def two_small(policy: str) -> list[str | None]:
    scheduler = Scheduler(make_state(3), policy)
    return [scheduler.schedule(make_request(f"r{i}", cpu=500, mem=256)).node for i in range(2)]


@pytest.mark.parametrize("policy", ["binpack", "ratio"])
def test_packing_policies_put_two_small_requests_on_one_node(policy: str) -> None:
    assert two_small(policy) == ["n0", "n0"]


@pytest.mark.parametrize("policy", ["default", "spread", "round-robin"])
def test_spreading_policies_put_two_small_requests_on_different_nodes(policy: str) -> None:
    assert two_small(policy) == ["n0", "n1"]


def test_spread_spreads_a_service_before_the_load() -> None:
    state = make_state(2)
    state.reserve(1, make_request(cpu=3000))  # n1 is busier ...
    state.reserve(0, make_request(service="web"))  # ... but n0 runs web already
    decision = Scheduler(state, "spread").schedule(make_request(cpu=100, service="web"))
    # n0: ServiceSpread 0×3 + LeastAllocated (97+100)//2 = 98
    # n1: ServiceSpread 100×3 + LeastAllocated (900*100//4000 = 22, mem 100) 61 = 361
    assert decision.node == "n1"


# -- registration ---------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, policies.PolicyFactory]:
    """A private copy of the registry, entry points not yet loaded; restored afterwards."""
    copy = dict(policies._REGISTRY)
    monkeypatch.setattr(policies, "_REGISTRY", copy)
    monkeypatch.setattr(policies, "_entry_points_loaded", False)
    monkeypatch.setattr(policies, "_BROKEN", {})
    return copy


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *points: tuple[str, str]) -> list[str]:
    """Make ``entry_points(group=...)`` return ``points``; returns the groups asked for."""
    asked: list[str] = []

    def entry_points(*, group: str) -> list[EntryPoint]:
        asked.append(group)
        return [EntryPoint(name=name, value=value, group=group) for name, value in points]

    monkeypatch.setattr(policies, "entry_points", entry_points)
    return asked


def test_third_party_policy_through_an_entry_point(
    registry: dict[str, policies.PolicyFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = fake_entry_points(monkeypatch, ("mine", "tests.sched.fake_policy:build"))

    assert "mine" in policy_names()
    profile = get_policy("mine")

    assert asked == [ENTRY_POINT_GROUP] == ["harmonia.policies"]
    assert profile.name == "mine"
    assert registry["mine"] is fake_policy.build
    assert Scheduler(make_state(2), "mine").schedule(make_request(cpu=1)).node == "n0"
    # entry points are read once
    policy_names()
    assert asked == [ENTRY_POINT_GROUP]


def test_entry_points_do_not_replace_built_ins(
    registry: dict[str, policies.PolicyFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(monkeypatch, ("default", "tests.sched.fake_policy:build"))
    calls = fake_policy.calls
    assert get_policy("default").name == "default"
    assert fake_policy.calls == calls


def test_broken_entry_point_is_a_harmonia_error(
    registry: dict[str, policies.PolicyFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(monkeypatch, ("broken", "tests.sched.no_such_module:build"))
    with pytest.raises(
        HarmoniaError,
        match=re.escape("policy 'broken' from 'tests.sched.no_such_module:build' failed to load"),
    ):
        get_policy("broken")


def test_broken_entry_point_is_reported_and_the_others_still_load(
    registry: dict[str, policies.PolicyFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(
        monkeypatch,
        ("broken", "tests.sched.no_such_module:build"),
        ("mine", "tests.sched.fake_policy:build"),
    )
    # The entry point after the broken one still loads, on every call.
    assert "mine" in policy_names()
    assert "mine" in policy_names()
    assert "broken" not in policy_names()
    assert "no_such_module" in policies.broken_policies()["broken"]
    with pytest.raises(HarmoniaError, match=r"policy 'broken' from .* failed to load"):
        get_policy("broken")


def test_factory_must_return_a_profile(
    registry: dict[str, policies.PolicyFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(monkeypatch, ("odd", "tests.sched.fake_policy:not_a_profile"))
    with pytest.raises(HarmoniaError, match="policy 'odd': factory returned str, not Profile"):
        get_policy("odd")


def test_register_policy_in_code(
    registry: dict[str, policies.PolicyFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_entry_points(monkeypatch)

    def fit_only() -> Profile:
        return Profile("fit-only", [NodeResourcesFit()])

    register_policy("fit-only", fit_only)
    assert "fit-only" in policy_names()
    assert get_policy("fit-only").name == "fit-only"

    with pytest.raises(HarmoniaError, match="policy 'default' is already registered"):
        register_policy("default", fit_only)
    register_policy("default", fit_only, replace=True)
    assert get_policy("default").name == "fit-only"


def test_registry_is_restored_after_the_tests_above() -> None:
    assert "mine" not in policy_names() and "fit-only" not in policy_names()
    assert get_policy("default").name == "default"
