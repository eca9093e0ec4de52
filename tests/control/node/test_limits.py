"""Detection of cgroup v2 / v1 / none on fake cgroup trees, the limit files written, and
the limits entered by real processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harmonia.control.node.limits import (
    ADDRESS_SPACE_FACTOR,
    ADDRESS_SPACE_HEADROOM_MIB,
    CgroupV1Limiter,
    CgroupV2Limiter,
    RlimitLimiter,
    detect,
    read_own_groups,
)
from harmonia.control.protocol import InstanceState, RestartPolicy
from tests.control.node.fakes import FakeCluster, eventually, running_engine, spec

MIB = 1 << 20


def fake_v2(tmp_path: Path, controllers: str = "cpuset cpu io memory pids") -> Path:
    root = tmp_path / "cgroup"
    (root / "user.slice" / "engine.scope").mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (tmp_path / "self").write_text("0::/user.slice/engine.scope\n")
    return root


def fake_v1(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    (root / "cpu,cpuacct").mkdir(parents=True)
    (root / "cpu").symlink_to("cpu,cpuacct")
    (root / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "memory" / "pod7").mkdir(parents=True)
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "self").write_text(
        "12:pids:/\n4:memory:/pod7\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n"
    )
    return root


def test_cgroup_v2_detected_below_the_engines_own_group(tmp_path: Path) -> None:
    root = fake_v2(tmp_path)
    limiter = detect("node-a", root=root, self_cgroup=tmp_path / "self")
    assert isinstance(limiter, CgroupV2Limiter)
    own = root / "user.slice" / "engine.scope"
    assert limiter.base == own / "harmonia-node-a"
    assert (own / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (limiter.base / "cgroup.subtree_control").read_text() == "+cpu +memory"

    applied = limiter.apply("web.0", 500, 128)
    group = limiter.base / "web.0"
    assert (group / "cpu.max").read_text() == "50000 100000"
    assert (group / "memory.max").read_text() == str(128 * MIB)
    assert applied.procs_files == (str(group / "cgroup.procs"),)
    assert applied.address_space_bytes is None
    assert applied.detail == "cgroup v2: cpu 500m, memory 128 MiB"

    (group / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert limiter.out_of_memory("web.0")
    limiter.release("web.0")
    assert not group.exists()
    limiter.cleanup()
    assert not limiter.base.exists() and own.exists()


def test_cgroup_v2_without_the_memory_controller_falls_back_to_rlimits(tmp_path: Path) -> None:
    root = fake_v2(tmp_path, controllers="cpuset cpu io pids")
    limiter = detect("node-a", root=root, self_cgroup=tmp_path / "self")
    assert isinstance(limiter, RlimitLimiter)
    assert "cgroup v2" in limiter.reason


def test_cgroup_v1_detected_in_the_cpu_and_memory_hierarchies(tmp_path: Path) -> None:
    root = fake_v1(tmp_path)
    limiter = detect("node-a", root=root, self_cgroup=tmp_path / "self")
    assert isinstance(limiter, CgroupV1Limiter)
    assert limiter.cpu_base == root / "cpu" / "harmonia-node-a"
    assert limiter.memory_base == root / "memory" / "pod7" / "harmonia-node-a"

    applied = limiter.apply("web.0", 250, 64)
    cpu, memory = limiter.cpu_base / "web.0", limiter.memory_base / "web.0"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "25000"
    assert (memory / "memory.limit_in_bytes").read_text() == str(64 * MIB)
    assert applied.procs_files == (str(cpu / "cgroup.procs"), str(memory / "cgroup.procs"))
    assert applied.detail == "cgroup v1: cpu 250m, memory 64 MiB"
    assert not limiter.out_of_memory("web.0")

    # The kernel refuses quotas under 1 ms; no request writes no limit.
    limiter.apply("tiny.0", 1, 0)
    assert (limiter.cpu_base / "tiny.0" / "cpu.cfs_quota_us").read_text() == "1000"
    assert not (limiter.memory_base / "tiny.0" / "memory.limit_in_bytes").exists()
    assert limiter.apply("free.0", 0, 0).detail == ""

    for instance_id in ("web.0", "tiny.0", "free.0"):
        limiter.release(instance_id)
    assert list(limiter.cpu_base.iterdir()) == [] and list(limiter.memory_base.iterdir()) == []


def test_no_cgroups_or_cgroups_disabled_means_rlimits(tmp_path: Path) -> None:
    empty = tmp_path / "tmpfs"
    empty.mkdir()
    limiter = detect("node-a", root=empty, self_cgroup=tmp_path / "missing")
    assert isinstance(limiter, RlimitLimiter)
    assert "no cgroup" in limiter.reason
    disabled = detect("node-a", use_cgroups=False, root=fake_v2(tmp_path))
    assert isinstance(disabled, RlimitLimiter)
    assert disabled.reason == "cgroups disabled by configuration"
    assert not (tmp_path / "cgroup" / "user.slice" / "engine.scope" / "harmonia-node-a").exists()


def test_rlimit_fallback_leaves_headroom_for_the_address_space() -> None:
    limiter = RlimitLimiter("no cgroups")
    applied = limiter.apply("web.0", 500, 100)
    expected = (100 * ADDRESS_SPACE_FACTOR + ADDRESS_SPACE_HEADROOM_MIB) * MIB
    assert applied.address_space_bytes == expected
    assert applied.procs_files == ()
    assert applied.detail == (
        f"memory limited by RLIMIT_AS to {expected // MIB} MiB of address space; "
        "CPU quota not enforced (no cgroups)"
    )
    unlimited = limiter.apply("web.1", 0, 0)
    assert unlimited.address_space_bytes is None and unlimited.detail == ""


def test_own_groups_are_read_per_hierarchy(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    own = read_own_groups(tmp_path / "self")
    assert own.by_controller["memory"] == "/pod7"
    assert own.by_controller["cpu"] == own.by_controller["cpuacct"] == "/"
    assert own.unified == "/"


@pytest.mark.anyio
async def test_an_instance_joins_its_group_before_it_runs(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    root = fake_v2(tmp_path)
    limiter = detect("node-a", root=root, self_cgroup=tmp_path / "self")
    assert isinstance(limiter, CgroupV2Limiter)
    async with running_engine(tmp_path / "node", cluster, limiter=limiter) as engine:
        request = {"id": "web.0", "cpu_m": 500, "memory_mib": 128}
        engine.submit(spec("web.0", "sleep", "30", request=request))
        instance = engine.instances["web.0"]
        await eventually(lambda: instance.state is not InstanceState.NODE_SCHEDULED)
        assert instance.state is InstanceState.RUNNING, instance.detail
        procs = limiter.base / "web.0" / "cgroup.procs"
        # Written by the child itself between fork and exec.
        assert procs.read_text() == str(instance.pid)
        assert instance.detail == "cgroup v2: cpu 500m, memory 128 MiB"
        await engine.stop("web.0")
        assert not (limiter.base / "web.0").exists()
    assert not limiter.base.exists()


@pytest.mark.anyio
async def test_host_cgroups_enforce_the_memory_limit(tmp_path: Path, cluster: FakeCluster) -> None:
    """On a host whose cgroups the engine may use (root, writable hierarchies)."""
    limiter = detect(f"test-{os.getpid()}")
    if not isinstance(limiter, CgroupV1Limiter | CgroupV2Limiter):
        pytest.skip("no writable cgroup v1/v2 cpu and memory controllers on this host")
    allocate = "b = bytearray(512 << 20); b[::4096] = b'x' * (len(b) // 4096); print('ok')"
    try:
        async with running_engine(tmp_path, cluster, limiter=limiter) as engine:
            engine.submit(
                spec(
                    "big.0",
                    sys.executable,
                    "-c",
                    allocate,
                    restart=RestartPolicy.NEVER,
                    request={"id": "big.0", "memory_mib": 64},
                )
            )
            await eventually(lambda: not engine.instances["big.0"].supervised, timeout=20)
            big = engine.instances["big.0"]
            assert big.state is InstanceState.FAILED
            assert "out of memory: limit 64 MiB" in big.detail
    finally:
        limiter.cleanup()
