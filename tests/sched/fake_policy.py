"""A third-party policy, loaded through a fake ``harmonia.policies`` entry point in
tests/sched/test_policies.py."""

from __future__ import annotations

from harmonia.sched import Profile
from harmonia.sched.plugins import MostAllocated, NodeResourcesFit, NodeSchedulable

calls = 0


def build() -> Profile:
    global calls
    calls += 1
    return Profile(
        "mine",
        [NodeSchedulable(), NodeResourcesFit(), MostAllocated()],
        description="a third party's bin packing",
    )


def not_a_profile() -> object:
    return "binpack"
