"""Decisions and plans: what the scheduling core returns to its host.

A :class:`Decision` says where one request goes, or why it goes nowhere: per filter
plugin, how many nodes it rejected with an example reason, and — when asked to explain —
a reason for each rejected node (up to a limit) and the top scores with each plugin's
weighted share. A :class:`Plan` gathers the decisions of a batch plus evictions and
migrations; the simulator, the control plane and the Kubernetes adapter apply it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harmonia.sched.framework import Code


@dataclass(frozen=True)
class NodeScore:
    node: str
    total: float
    by_plugin: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "total": self.total, "by_plugin": self.by_plugin}


@dataclass(frozen=True)
class Rejection:
    """How many nodes one filter plugin rejected, with examples of why."""

    plugin: str
    count: int
    examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "examples": list(self.examples)}


@dataclass(slots=True)
class Decision:
    request_id: str
    node: str | None
    code: Code
    reasons: list[str] = field(default_factory=list)
    nodes_total: int = 0
    nodes_feasible: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    top_scores: list[NodeScore] = field(default_factory=list)
    node_reasons: dict[str, list[str]] = field(default_factory=dict)
    policy: str = ""

    @property
    def placed(self) -> bool:
        return self.node is not None

    def summary(self) -> str:
        """One line in kube-scheduler's style: ``0/50 nodes are available: ...``."""
        if self.placed:
            feasible = f"{self.nodes_feasible}/{self.nodes_total} feasible"
            return f"{self.request_id} -> {self.node} ({feasible})"
        return f"{self.request_id}: {'; '.join(self.reasons)}"

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request": self.request_id,
            "node": self.node,
            "status": self.code.value,
            "reasons": {
                "summary": list(self.reasons),
                "rejected": {r.plugin: r.to_dict() for r in self.rejections},
            },
        }
        if explain:
            out["reasons"]["feasible"] = self.nodes_feasible
            out["reasons"]["nodes"] = self.nodes_total
            out["reasons"]["top_scores"] = [s.to_dict() for s in self.top_scores]
            if self.node_reasons:
                out["reasons"]["by_node"] = self.node_reasons
        return out


@dataclass(frozen=True)
class Eviction:
    request_id: str
    node: str
    reason: str


@dataclass(frozen=True)
class Migration:
    request_id: str
    source: str
    target: str
    reason: str


@dataclass
class Plan:
    """The outcome of a batch; the host applies it and retries what its commit refuses."""

    decisions: list[Decision] = field(default_factory=list)
    evictions: list[Eviction] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def placements(self) -> list[tuple[str, str]]:
        return [(d.request_id, d.node) for d in self.decisions if d.node is not None]

    @property
    def scheduled(self) -> int:
        return sum(1 for d in self.decisions if d.placed)

    @property
    def unschedulable(self) -> int:
        return len(self.decisions) - self.scheduled
