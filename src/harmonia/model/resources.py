"""Resource vectors: CPU millicores, memory MiB, GPUs, storage MiB, bandwidth kbit/s.

:data:`RESOURCE_NAMES` fixes the column order that :class:`harmonia.sched.ClusterState`
uses for its ``(nodes, resources)`` arrays.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Upper bound of any amount: 2**40 (about 10**12) leaves every sum over 100,000 nodes and
# every score product (amount × 100) exact in int64 and float64 alike.
MAX_AMOUNT = 2**40

RESOURCE_NAMES: tuple[str, ...] = (
    "cpu_m",
    "memory_mib",
    "gpu",
    "storage_mib",
    "bandwidth_in_kbps",
    "bandwidth_out_kbps",
)


class Resources(BaseModel):
    """An amount of every schedulable resource; all integers, never negative."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_m: int = Field(0, ge=0, le=MAX_AMOUNT, description="CPU in millicores (1000 = one core)")
    memory_mib: int = Field(0, ge=0, le=MAX_AMOUNT, description="memory in MiB")
    gpu: int = Field(0, ge=0, le=MAX_AMOUNT, description="whole GPUs")
    storage_mib: int = Field(0, ge=0, le=MAX_AMOUNT, description="local storage in MiB")
    bandwidth_in_kbps: int = Field(
        0, ge=0, le=MAX_AMOUNT, description="ingress bandwidth in kbit/s"
    )
    bandwidth_out_kbps: int = Field(
        0, ge=0, le=MAX_AMOUNT, description="egress bandwidth in kbit/s"
    )

    def as_tuple(self) -> tuple[int, ...]:
        """The amounts in :data:`RESOURCE_NAMES` order."""
        return (
            self.cpu_m,
            self.memory_mib,
            self.gpu,
            self.storage_mib,
            self.bandwidth_in_kbps,
            self.bandwidth_out_kbps,
        )

    @classmethod
    def from_tuple(cls, values: tuple[int, ...] | list[int]) -> Resources:
        return cls(**dict(zip(RESOURCE_NAMES, (int(v) for v in values), strict=True)))

    def __add__(self, other: Resources) -> Resources:
        return Resources.from_tuple(
            [a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)]
        )

    def fits_in(self, other: Resources) -> bool:
        return all(a <= b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True))
