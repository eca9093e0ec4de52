"""CPU and memory limits for the instances of a node engine: cgroup v2, cgroup v1 or rlimits.

The engine detects once, at start, what the host allows (:func:`detect`):

- **cgroup v2**: the cgroup root is a cgroup2 mount (it has ``cgroup.controllers``) that
  offers the ``cpu`` and ``memory`` controllers and lets us create groups. Each instance
  gets a child group ``<own group>/harmonia-<node>/<instance>`` with ``cpu.max`` and
  ``memory.max``;
- **cgroup v1**: the ``cpu`` and ``memory`` hierarchies are mounted under the root and
  writable. Each instance gets a group in both, with ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` and ``memory.limit_in_bytes``;
- otherwise (or when the configuration says ``use_cgroups: false``) **rlimits**: the
  child sets ``RLIMIT_AS`` before exec. The address space of a process is larger than
  its resident memory (shared libraries, thread stacks, malloc arenas are reserved, not
  used), so the limit is ``ADDRESS_SPACE_FACTOR × memory + ADDRESS_SPACE_HEADROOM_MIB``;
  a process that really allocates well past its request still fails. There is no CPU
  quota without cgroups; the instance's ``detail`` says so.

Groups are created below the engine's *own* group (read from ``/proc/self/cgroup``), not
at the root, so an engine that itself runs in a limited group (a container, a systemd
slice) never lets its instances escape that limit. The child joins its group in the
forked process before ``exec`` (:meth:`AppliedLimits.enter`), so not one instruction of
the instance runs outside its limits.

The cgroup root and the ``/proc/self/cgroup`` file are parameters so that the detection
and the files written can be tested on a fake tree in a temporary directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")

# The CFS period: 100 ms, the kernel's default. A quota of cpu_m millicores is
# cpu_m/1000 of a CPU per period, i.e. cpu_m * 100 µs.
CPU_PERIOD_US = 100_000
# The kernel refuses quotas below 1 ms.
MIN_CPU_QUOTA_US = 1_000

# RLIMIT_AS fallback: see the module docstring. A Python interpreter maps ~30 MiB of
# address space before it allocates anything, glibc reserves 64 MiB per thread arena.
ADDRESS_SPACE_FACTOR = 2
ADDRESS_SPACE_HEADROOM_MIB = 256

MIB = 1 << 20


@dataclass(frozen=True)
class AppliedLimits:
    """What a child process does between fork and exec to enter its limits."""

    detail: str = ""
    procs_files: tuple[str, ...] = ()
    address_space_bytes: int | None = None

    def enter(self) -> None:
        """Run in the forked child before exec: join the groups, set the rlimit.

        Kept to plain system calls: it runs after fork, where only the async-signal-safe
        part of the interpreter is dependable."""
        pid = str(os.getpid()).encode()
        for procs in self.procs_files:
            # O_CREAT only matters on a fake tree (tests): cgroup.procs always exists.
            fd = os.open(procs, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if self.address_space_bytes is not None:
            resource.setrlimit(
                resource.RLIMIT_AS, (self.address_space_bytes, self.address_space_bytes)
            )


class Limiter:
    """Applies an instance's limits; this base class applies none (no request, no limit)."""

    kind = "none"

    def apply(self, instance_id: str, cpu_m: int, memory_mib: int) -> AppliedLimits:
        return AppliedLimits(detail="")

    def out_of_memory(self, instance_id: str) -> bool:
        """Whether the kernel killed a process of the instance for exceeding its memory
        (read before :meth:`release`)."""
        return False

    def release(self, instance_id: str) -> None:
        """Remove what :meth:`apply` created once the instance's processes are gone."""

    def cleanup(self) -> None:
        """Remove the engine's own groups (at shutdown, when they are empty)."""


class RlimitLimiter(Limiter):
    """No usable cgroups: memory through ``RLIMIT_AS``, CPU not enforced."""

    kind = "rlimit"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def apply(self, instance_id: str, cpu_m: int, memory_mib: int) -> AppliedLimits:
        notes: list[str] = []
        address_space: int | None = None
        if memory_mib > 0:
            address_space = (memory_mib * ADDRESS_SPACE_FACTOR + ADDRESS_SPACE_HEADROOM_MIB) * MIB
            notes.append(
                f"memory limited by RLIMIT_AS to {address_space // MIB} MiB of address space"
            )
        if cpu_m > 0:
            notes.append(f"CPU quota not enforced ({self.reason})")
        return AppliedLimits(detail="; ".join(notes), address_space_bytes=address_space)


def _write(path: Path, value: str) -> None:
    path.write_text(value, encoding="ascii")


def _remove_group(group: Path) -> None:
    """rmdir a cgroup (its control files vanish with it); children first."""
    if not group.is_dir():
        return
    for child in group.iterdir():
        if child.is_dir():
            _remove_group(child)
    try:
        group.rmdir()
    except OSError:
        # A real cgroup directory is "not empty" until rmdir succeeds on it as a whole;
        # on a fake tree (tests) the control files are plain files: remove them.
        for entry in group.iterdir():
            if entry.is_file():
                with contextlib.suppress(OSError):
                    entry.unlink()
        with contextlib.suppress(OSError):
            group.rmdir()


def _oom_kills(path: Path) -> int:
    """The ``oom_kill`` count of a ``memory.events`` (v2) or ``memory.oom_control`` (v1)."""
    try:
        text = path.read_text(encoding="ascii")
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def cpu_quota_us(cpu_m: int) -> int:
    return max(MIN_CPU_QUOTA_US, cpu_m * CPU_PERIOD_US // 1000)


class CgroupV2Limiter(Limiter):
    """One child group per instance under ``base`` (``<own group>/harmonia-<node>``)."""

    kind = "cgroup2"

    def __init__(self, base: Path) -> None:
        self.base = base

    def apply(self, instance_id: str, cpu_m: int, memory_mib: int) -> AppliedLimits:
        group = self.base / instance_id
        group.mkdir(exist_ok=True)
        notes = []
        if cpu_m > 0:
            _write(group / "cpu.max", f"{cpu_quota_us(cpu_m)} {CPU_PERIOD_US}")
            notes.append(f"cpu {cpu_m}m")
        if memory_mib > 0:
            _write(group / "memory.max", str(memory_mib * MIB))
            notes.append(f"memory {memory_mib} MiB")
        detail = "cgroup v2: " + ", ".join(notes) if notes else ""
        return AppliedLimits(detail=detail, procs_files=(str(group / "cgroup.procs"),))

    def out_of_memory(self, instance_id: str) -> bool:
        return _oom_kills(self.base / instance_id / "memory.events") > 0

    def release(self, instance_id: str) -> None:
        _remove_group(self.base / instance_id)

    def cleanup(self) -> None:
        _remove_group(self.base)


class CgroupV1Limiter(Limiter):
    """One group per instance in the cpu and the memory hierarchy."""

    kind = "cgroup1"

    def __init__(self, cpu_base: Path, memory_base: Path) -> None:
        self.cpu_base = cpu_base
        self.memory_base = memory_base

    def apply(self, instance_id: str, cpu_m: int, memory_mib: int) -> AppliedLimits:
        cpu_group = self.cpu_base / instance_id
        memory_group = self.memory_base / instance_id
        cpu_group.mkdir(exist_ok=True)
        memory_group.mkdir(exist_ok=True)
        notes = []
        if cpu_m > 0:
            _write(cpu_group / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu_group / "cpu.cfs_quota_us", str(cpu_quota_us(cpu_m)))
            notes.append(f"cpu {cpu_m}m")
        if memory_mib > 0:
            _write(memory_group / "memory.limit_in_bytes", str(memory_mib * MIB))
            notes.append(f"memory {memory_mib} MiB")
        detail = "cgroup v1: " + ", ".join(notes) if notes else ""
        return AppliedLimits(
            detail=detail,
            procs_files=(str(cpu_group / "cgroup.procs"), str(memory_group / "cgroup.procs")),
        )

    def out_of_memory(self, instance_id: str) -> bool:
        return _oom_kills(self.memory_base / instance_id / "memory.oom_control") > 0

    def release(self, instance_id: str) -> None:
        _remove_group(self.cpu_base / instance_id)
        _remove_group(self.memory_base / instance_id)

    def cleanup(self) -> None:
        _remove_group(self.cpu_base)
        _remove_group(self.memory_base)


@dataclass
class OwnGroups:
    """The engine's own group per hierarchy, from ``/proc/self/cgroup``."""

    unified: str = "/"
    by_controller: dict[str, str] = field(default_factory=dict)


def read_own_groups(self_cgroup: Path) -> OwnGroups:
    """Parse lines ``id:controllers:path`` (``0::path`` is the cgroup v2 one)."""
    own = OwnGroups()
    try:
        text = self_cgroup.read_text(encoding="utf-8")
    except OSError:
        return own
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            own.unified = path or "/"
        for controller in controllers.split(","):
            if controller:
                own.by_controller[controller] = path or "/"
    return own


def _below(root: Path, group: str) -> Path:
    return root / group.lstrip("/")


def _make_base(parent: Path, name: str) -> Path | None:
    """Create ``parent/name`` (the engine's group); None when the host does not allow it."""
    base = parent / name
    try:
        base.mkdir(exist_ok=True)
    except OSError as exc:
        log.info("cannot create cgroup %s: %s", base, exc)
        return None
    return base


def _enable_v2_controllers(parent: Path, base: Path) -> bool:
    """Let ``base``'s children use cpu and memory.

    cgroup v2 forbids enabling controllers for the children of a group that holds
    processes ("no internal processes"), and the engine itself lives in ``parent``. As
    systemd does for delegated groups, move the engine into a leaf ``engine`` group first
    when that is what stands in the way."""
    enable = "+cpu +memory"
    try:
        _write(parent / "cgroup.subtree_control", enable)
    except OSError:
        try:
            leaf = parent / "harmonia-engine"
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
            _write(parent / "cgroup.subtree_control", enable)
        except OSError as exc:
            log.info("cannot enable cgroup v2 controllers in %s: %s", parent, exc)
            return False
    try:
        _write(base / "cgroup.subtree_control", enable)
    except OSError as exc:
        log.info("cannot enable cgroup v2 controllers in %s: %s", base, exc)
        return False
    return True


def detect(
    node_name: str,
    *,
    use_cgroups: bool = True,
    root: Path = CGROUP_ROOT,
    self_cgroup: Path = SELF_CGROUP,
) -> Limiter:
    """The best limiter the host allows, creating the engine's group when it is a cgroup one.

    A cgroup2 mount is recognised by ``cgroup.controllers`` at its root, which a tmpfs
    holding v1 hierarchies (or no cgroups at all) does not have."""
    if not use_cgroups:
        return RlimitLimiter("cgroups disabled by configuration")
    group_name = f"harmonia-{node_name}"
    own = read_own_groups(self_cgroup)
    controllers_file = root / "cgroup.controllers"
    if controllers_file.is_file():
        try:
            available = set(controllers_file.read_text(encoding="ascii").split())
        except OSError:
            available = set()
        if {"cpu", "memory"} <= available:
            parent = _below(root, own.unified)
            base = _make_base(parent, group_name)
            if base is not None and _enable_v2_controllers(parent, base):
                return CgroupV2Limiter(base)
        return RlimitLimiter("cgroup v2 without usable cpu and memory controllers")
    cpu_root, memory_root = root / "cpu", root / "memory"
    if (cpu_root / "cpu.cfs_quota_us").is_file() and (
        memory_root / "memory.limit_in_bytes"
    ).is_file():
        cpu_parent = _below(cpu_root, own.by_controller.get("cpu", "/"))
        memory_parent = _below(memory_root, own.by_controller.get("memory", "/"))
        cpu_base = _make_base(cpu_parent, group_name)
        memory_base = _make_base(memory_parent, group_name)
        if cpu_base is not None and memory_base is not None:
            return CgroupV1Limiter(cpu_base, memory_base)
        return RlimitLimiter("cgroup v1 hierarchies are not writable")
    return RlimitLimiter("no cgroup cpu and memory controllers on this host")


__all__ = [
    "ADDRESS_SPACE_FACTOR",
    "ADDRESS_SPACE_HEADROOM_MIB",
    "CPU_PERIOD_US",
    "AppliedLimits",
    "CgroupV1Limiter",
    "CgroupV2Limiter",
    "Limiter",
    "RlimitLimiter",
    "cpu_quota_us",
    "detect",
    "read_own_groups",
]
