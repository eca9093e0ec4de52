"""What a decision needs of a request alone, learned once per request object.

A request's resource amounts, their vector and shape key, the plugins that sit it out
(they enforce constraint types it does not carry) and the refusal texts for constraint
types the policy cannot enforce depend only on the request and the policy's plugins, not
on the state. Requests are immutable (frozen models), so these facts are kept per request
object: hosts that reuse one request per shape (the simulator) or ask several schedulers
in turn (the root and then a cluster of a delegated policy, which share one
:class:`FactsBook`) learn them once.
"""

from __future__ import annotations

import struct
from collections.abc import Set as AbstractSet
from typing import NamedTuple

import numpy as np

from harmonia.model import PlacementRequest
from harmonia.sched.framework import Profile
from harmonia.sched.state import NUM_RESOURCES, IntArray, request_amounts

#: Requests whose facts are kept; past this the book starts over (a dict clear is cheap
#: and a host's working set of request objects is far smaller).
FACTS_LIMIT = 1 << 14
# Native int64s, the layout of an int64 array's bytes (``vector.tobytes()``).
_PACK = struct.Struct(f"@{NUM_RESOURCES}q").pack


class RequestFacts(NamedTuple):
    request: PlacementRequest
    amounts: list[int]  # RESOURCE_NAMES order, Python ints for scalar paths
    vector: IntArray  # the same, int64, read-only: cycles share it
    requested: tuple[int, ...]  # columns with a non-zero amount
    shape: bytes  # vector.tobytes(), the key of the scheduler's shape cache
    inapplicable: AbstractSet[str]  # constraint-driven plugins the request does not engage
    unenforced: tuple[str, ...]  # why the policy refuses it outright; empty when it may not


class FactsBook:
    """Facts per request object for one policy's plugin set (see the module docstring)."""

    def __init__(self, profile: Profile) -> None:
        self.policy = profile.name
        self.constraint_types = profile.constraint_types
        self.driven = _driven(profile)
        self.driven_names = frozenset(name for name, _ in self.driven)
        self._facts: dict[int, RequestFacts] = {}

    def serves(self, profile: Profile) -> bool:
        """Whether facts learned here hold for ``profile`` too (same name, same
        constraint-driven plugins)."""
        return (
            profile.name == self.policy
            and profile.constraint_types == self.constraint_types
            and _driven(profile) == self.driven
        )

    def learn(self, request: PlacementRequest) -> RequestFacts:
        """The facts of ``request``, from the book when this very object was seen."""
        facts = self._facts.get(id(request))
        if facts is not None and facts.request is request:
            return facts
        amounts = request_amounts(request)
        # The shape key first, then the vector as a view of those immutable bytes: it is
        # read-only by construction, cheaper than building an array and locking it.
        shape = _PACK(*amounts)
        vector: IntArray = np.frombuffer(shape, dtype=np.int64)
        unenforced: tuple[str, ...] = ()
        inapplicable: AbstractSet[str] = self.driven_names
        if request.constraints or request.labels:
            kinds = request.constraint_kinds
            missing = sorted(kinds - self.constraint_types)
            if missing:
                unenforced = _unenforced_reasons(request, self.policy, missing)
            inapplicable = frozenset(name for name, types in self.driven if not kinds & types)
        facts = RequestFacts(
            request,
            amounts,
            vector,
            tuple([i for i, v in enumerate(amounts) if v]),
            shape,
            inapplicable,
            unenforced,
        )
        if len(self._facts) >= FACTS_LIMIT:
            self._facts.clear()
        self._facts[id(request)] = facts
        return facts


def _driven(profile: Profile) -> list[tuple[str, frozenset[str]]]:
    """The plugins that enforce constraint types, with those types."""
    return [
        (p.name, frozenset(types))
        for p in profile.plugins
        if (types := getattr(p, "constraint_types", ()))
    ]


def _unenforced_reasons(
    request: PlacementRequest, policy: str, types: list[str]
) -> tuple[str, ...]:
    from_labels = "latency" not in {c.type for c in request.constraints}
    return tuple(
        f"policy {policy!r} has no plugin that enforces {t!r} constraints"
        + (" (delay labels are latency constraints)" if t == "latency" and from_labels else "")
        for t in types
    )


__all__ = ["FACTS_LIMIT", "FactsBook", "RequestFacts"]
