"""How a trace's resource units and priorities map onto Harmonia's units and QoS classes.

Every reader takes a :class:`ResourceMapping`; the simulator passes the one matching its
node classes, tests pass their own. :data:`DEFAULT_MAPPING` is used otherwise.

**Normalized requests.** Google's traces (ClusterData2011_2 schema, "Google cluster-usage
traces v3") and Alibaba's ``plan_mem`` / ``mem_size`` state requests as a fraction of the
largest machine of the cell, not in cores and bytes. Harmonia maps 1.0 onto a *reference
machine*. The default is the largest general-purpose class of
:mod:`harmonia.model.generate`, ``cloud-server`` at its largest shape: 96 vCPU
(96,000 m), 384 GiB (393,216 MiB) and 4 TiB of storage (4,194,304 MiB). The GPU hosts
(``cloud-gpu-server``, 1,152 GiB) are deliberately not the reference: they are tainted,
rare, and their 12 GiB per vCPU would make every memory request three times bigger than
its CPU request relative to the machines that run most work. One reference for all
resources keeps a request's CPU:memory ratio that of the trace.

Rounding: ``amount = floor(fraction × reference + 0.5)`` (half up), at least 1 when the
fraction is above 0; 0 stays 0. Example, the 2011 request ``0.03125`` CPU and
``0.01593`` memory: 0.03125 × 96,000 = 3,000 m; 0.01593 × 393,216 = 6,263.9 → 6,264 MiB.
An empty field reads as 0; the reader counts it in :attr:`ReadStats.empty_fields`.

**Alibaba CPU** is not normalized: ``plan_cpu`` / ``cpu_request`` are in hundredths of a
core (100 = 1 core), so 1 unit = 10 m. Alibaba memory is normalized to 0..100 (percent of
the largest machine): ``memory = plan_mem / 100 × reference``.

**Azure Functions** report memory in MB per application; it is taken as MiB unchanged.
CPU follows AWS Lambda's published rule, one vCPU per 1,769 MB of configured memory:
``cpu = floor(memory × 1000 / 1769 + 0.5)`` m, at least 1 (a 128 MiB function gets 72 m).

**QoS classes.** Borg has no LC/BE field; the rule, applied the same to every Borg event:

- 2011 (priorities 0–11): LC when ``priority >= 9`` (the production band 9–11 of the
  2011 schema doc) or ``scheduling_class >= 2`` (classes 2 and 3 are the
  latency-sensitive ones); BE otherwise.
- 2019 (priorities 0–450): LC when ``priority >= 120`` (the production tier 120–359 and
  the monitoring tier ≥ 360 of the v3 doc) or ``scheduling_class >= 2``; BE otherwise,
  which covers the free tier (≤ 99), best-effort batch (110–115) and mid tier (116–119).
- Alibaba batch tasks are BE and its containers (online services) LC; Azure invocations
  are FUNCTION.
"""

from __future__ import annotations

from dataclasses import dataclass

from harmonia.model import QoSClass
from harmonia.model.errors import FieldError, InputError
from harmonia.model.generate import NODE_CLASSES

#: AWS Lambda allocates one vCPU per 1,769 MB of function memory.
LAMBDA_MIB_PER_VCPU = 1769


@dataclass(frozen=True, slots=True)
class ResourceMapping:
    """A reference machine for normalized requests plus the QoS rules (see module doc)."""

    cpu_m: int  # what a normalized CPU request of 1.0 means
    memory_mib: int
    disk_mib: int
    reference: str = ""  # where the reference came from, for reports
    lc_min_priority_2011: int = 9
    lc_min_priority_2019: int = 120
    lc_min_scheduling_class: int = 2
    function_mib_per_vcpu: int = LAMBDA_MIB_PER_VCPU

    def __post_init__(self) -> None:
        errors = [
            FieldError(name, f"must be > 0, got {getattr(self, name)}")
            for name in ("cpu_m", "memory_mib", "disk_mib", "function_mib_per_vcpu")
            if getattr(self, name) <= 0
        ]
        if errors:
            raise InputError(errors, "resource mapping")

    @classmethod
    def for_node_class(cls, name: str = "cloud-server") -> ResourceMapping:
        """The largest shape (by CPU, then memory) of a node class of the generator."""
        for node_class in NODE_CLASSES:
            if node_class.name == name:
                cpu_m, memory_mib, _gpu = max(node_class.shapes)
                return cls(
                    cpu_m=cpu_m,
                    memory_mib=memory_mib,
                    disk_mib=max(node_class.storage_mib),
                    reference=f"{name} {cpu_m}m/{memory_mib}MiB",
                )
        known = ", ".join(c.name for c in NODE_CLASSES)
        raise InputError([FieldError("node_class", f"unknown {name!r}; known: {known}")])

    def cpu(self, fraction: float) -> int:
        """Millicores for a normalized CPU request."""
        return scale(fraction, self.cpu_m)

    def memory(self, fraction: float) -> int:
        """MiB for a normalized memory request."""
        return scale(fraction, self.memory_mib)

    def disk(self, fraction: float) -> int:
        """MiB for a normalized disk request."""
        return scale(fraction, self.disk_mib)

    def function_cpu(self, memory_mib: int) -> int:
        """Millicores of a serverless function with ``memory_mib`` (Lambda's rule)."""
        return scale(memory_mib / self.function_mib_per_vcpu, 1000)

    def qos_borg2011(self, priority: int, scheduling_class: int) -> QoSClass:
        if priority >= self.lc_min_priority_2011:
            return QoSClass.LC
        if scheduling_class >= self.lc_min_scheduling_class:
            return QoSClass.LC
        return QoSClass.BE

    def qos_borg2019(self, priority: int, scheduling_class: int) -> QoSClass:
        if priority >= self.lc_min_priority_2019:
            return QoSClass.LC
        if scheduling_class >= self.lc_min_scheduling_class:
            return QoSClass.LC
        return QoSClass.BE


def scale(fraction: float, unit: int) -> int:
    """``floor(fraction × unit + 0.5)``, at least 1 when ``fraction > 0``; 0 stays 0.

    Negative fractions are the caller's to reject; they give 0 here.
    """
    if fraction <= 0.0:
        return 0
    amount = int(fraction * unit + 0.5)
    return amount if amount > 0 else 1


DEFAULT_MAPPING = ResourceMapping.for_node_class("cloud-server")
