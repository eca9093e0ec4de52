"""The machine's measured usage for heartbeats: CPU percent and memory, through psutil.

CPU percent is the machine's, averaged since the previous call (psutil keeps the last
sample), so a heartbeat never blocks to sample it.
"""

from __future__ import annotations

import psutil  # type: ignore[import-untyped,unused-ignore]

from harmonia.control.protocol import Usage

MIB = 1 << 20


class UsageMeter:
    """Samples the machine; the first CPU figure is 0.0 (no previous sample yet)."""

    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)

    def sample(self) -> Usage:
        memory = psutil.virtual_memory()
        return Usage(
            cpu_percent=max(0.0, float(psutil.cpu_percent(interval=None))),
            memory_used_mib=int(memory.used) // MIB,
            memory_total_mib=int(memory.total) // MIB,
        )


def process_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs and (when given) was created at ``create_time``: a pid may have
    been reused by an unrelated process since it was recorded."""
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(float(process.create_time()) - create_time) > 0.05:
            return False
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def create_time_of(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


__all__ = ["UsageMeter", "create_time_of", "process_alive"]
