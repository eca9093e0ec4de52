"""The node engine against a fake cluster manager, running real (short) processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harmonia.control.node.engine import check_spec_id, tail_lines
from harmonia.control.node.limits import AppliedLimits, Limiter, RlimitLimiter
from harmonia.control.node.usage import create_time_of
from harmonia.control.protocol import HeartbeatReply, InstanceState, RestartPolicy
from tests.control.node.fakes import FakeCluster, eventually, pid_alive, running_engine, spec

pytestmark = pytest.mark.anyio

RUNNING = InstanceState.RUNNING


async def test_registers_then_heartbeats_carry_usage_and_instances(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        await eventually(lambda: cluster.registrations, what="registration")
        registration = cluster.registrations[0]
        assert registration.node.name == "node-a"
        assert registration.url == "http://127.0.0.1:9"
        engine.submit(spec("web.0", "sleep", "30"))

        def reported_running() -> bool:
            status = cluster.last_status("web.0")
            return status is not None and status.state is RUNNING

        await eventually(reported_running, what="a heartbeat with web.0 RUNNING")
        status = cluster.last_status("web.0")
        assert status is not None and status.pid is not None and status.node == "node-a"
        assert pid_alive(status.pid)
        assert status.started_at is not None
        usage = cluster.heartbeats[-1].usage
        assert usage.memory_total_mib > 0 and usage.memory_used_mib > 0


async def test_a_transition_sends_a_prompt_heartbeat(tmp_path: Path, cluster: FakeCluster) -> None:
    # The periodic heartbeat is a minute away: only the prompt one can carry RUNNING.
    async with running_engine(tmp_path, cluster, config={"heartbeat_interval_s": 60}) as engine:
        await eventually(lambda: len(cluster.heartbeats) == 1, what="the first heartbeat")
        started = time.monotonic()
        engine.submit(spec("web.0", "sleep", "30"))

        def running() -> bool:
            status = cluster.last_status("web.0")
            return status is not None and status.state is RUNNING

        await eventually(running, timeout=2.0, what="a prompt heartbeat")
        assert time.monotonic() - started < 2.0


async def test_registers_again_when_the_cluster_forgot_the_node(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("web.0", "sleep", "30"))
        await eventually(lambda: engine.instances["web.0"].state is RUNNING)
        pid = engine.instances["web.0"].pid
        await eventually(lambda: cluster.heartbeats, what="a heartbeat")
        cluster.forget = True  # the cluster manager restarted and lost its nodes
        await eventually(lambda: len(cluster.registrations) == 2, what="a second registration")
        assert engine.secret == "secret-2"
        beats = len(cluster.heartbeats)
        await eventually(lambda: len(cluster.heartbeats) > beats, what="heartbeats resumed")
        status = cluster.last_status("web.0")
        assert status is not None and status.state is RUNNING and status.pid == pid
        assert pid is not None and pid_alive(pid)


async def test_registration_is_retried_until_the_cluster_answers(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    cluster.down = True
    async with running_engine(tmp_path, cluster, register_backoff_max_s=0.05) as engine:
        engine.submit(spec("web.0", "sleep", "30"))
        # Instances run before the node is registered.
        await eventually(lambda: engine.instances["web.0"].state is RUNNING)
        assert engine.secret is None
        cluster.down = False
        await eventually(lambda: cluster.last_status("web.0") is not None, what="registration")
        assert engine.secret == "secret-1"


async def test_start_is_idempotent_and_stop_too(tmp_path: Path, cluster: FakeCluster) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        first = engine.submit(spec("web.0", "sleep", "30"))
        assert first.state is InstanceState.NODE_SCHEDULED
        await eventually(lambda: engine.instances["web.0"].state is RUNNING)
        pid = engine.instances["web.0"].pid
        again = engine.submit(spec("web.0", "sleep", "30"))
        assert again.state is RUNNING and again.pid == pid
        assert len(engine.instances) == 1
        assert pid is not None
        await engine.stop("web.0")
        status = engine.status("web.0")
        assert status is not None and status.state is InstanceState.STOPPED
        assert status.pid is None
        assert not pid_alive(pid)
        await engine.stop("web.0")
        await engine.stop("never-started")
        status = engine.status("web.0")
        assert status is not None and status.state is InstanceState.STOPPED
        assert status.restarts == 0


async def test_stop_kills_a_process_that_ignores_sigterm(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    stubborn = ("sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done")
    async with running_engine(tmp_path, cluster, grace_s=0.3) as engine:
        engine.submit(spec("web.0", *stubborn))
        log = tmp_path / "instances" / "web.0" / "stdout.log"
        await eventually(lambda: log.exists() and "ready" in log.read_text())
        pid = engine.instances["web.0"].pid
        assert pid is not None
        started = time.monotonic()
        await engine.stop("web.0")
        assert time.monotonic() - started >= 0.3
        assert not pid_alive(pid)
        assert engine.instances["web.0"].state is InstanceState.STOPPED


async def test_an_exit_with_status_zero_is_stopped_and_not_restarted(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("job.0", "sh", "-c", "echo done"))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        instance = engine.instances["job.0"]
        assert instance.state is InstanceState.STOPPED
        assert instance.detail == "exited with status 0"
        assert instance.restarts == 0 and instance.pid is None


async def test_a_crash_fails_and_restarts_with_backoff_up_to_max_restarts(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        started = time.monotonic()
        engine.submit(spec("job.0", "sh", "-c", "echo run; exit 3", max_restarts=2))
        await eventually(lambda: not engine.instances["job.0"].supervised, what="give-up")
        elapsed = time.monotonic() - started
        instance = engine.instances["job.0"]
        assert instance.state is InstanceState.FAILED
        assert instance.restarts == 2
        assert instance.detail == "exited with status 3; gave up after 2 restarts"
        # Backoff 0.2 s, then 0.4 s.
        assert elapsed >= 0.6
        runs = (tmp_path / "instances" / "job.0" / "stdout.log").read_text().splitlines()
        assert runs == ["run"] * 3
        await eventually(
            lambda: (s := cluster.last_status("job.0")) is not None and s.restarts == 2,
            what="the final state reported",
        )


async def test_a_restarted_instance_runs_again_with_a_fresh_pid(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster, restart_backoff_s=0.01) as engine:
        engine.submit(spec("web.0", "sleep", "30"))
        await eventually(lambda: engine.instances["web.0"].state is RUNNING)
        instance = engine.instances["web.0"]
        first_pid, first_start = instance.pid, instance.started_at
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        await eventually(lambda: instance.restarts == 1 and instance.state is RUNNING)
        assert instance.pid not in (None, first_pid)
        assert instance.started_at is not None and first_start is not None
        assert instance.started_at > first_start


async def test_never_policy_does_not_restart(tmp_path: Path, cluster: FakeCluster) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("job.0", "sh", "-c", "echo run; exit 1", restart=RestartPolicy.NEVER))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        instance = engine.instances["job.0"]
        assert instance.state is InstanceState.FAILED
        assert instance.detail == "exited with status 1"
        assert instance.restarts == 0
        runs = (tmp_path / "instances" / "job.0" / "stdout.log").read_text().splitlines()
        assert runs == ["run"]


async def test_always_policy_restarts_after_a_clean_exit(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster, restart_backoff_s=0.01) as engine:
        engine.submit(spec("job.0", "true", restart=RestartPolicy.ALWAYS, max_restarts=2))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        instance = engine.instances["job.0"]
        assert instance.state is InstanceState.STOPPED and instance.restarts == 2


async def test_engine_max_restarts_caps_the_specs(tmp_path: Path, cluster: FakeCluster) -> None:
    async with running_engine(
        tmp_path, cluster, config={"max_restarts": 1}, restart_backoff_s=0.01
    ) as engine:
        engine.submit(spec("job.0", "false", max_restarts=5))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        assert engine.instances["job.0"].restarts == 1


async def test_a_command_that_does_not_exist_fails_without_restarts(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("job.0", "no-such-command-harmonia"))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        instance = engine.instances["job.0"]
        assert instance.state is InstanceState.FAILED
        assert instance.detail == "cmd: 'no-such-command-harmonia' not found"
        assert instance.restarts == 0


async def test_the_cmd_is_never_interpreted_by_a_shell(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("job.0", "echo", "hi; touch pwned", "$(touch pwned2)"))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        directory = tmp_path / "instances" / "job.0"
        assert (directory / "stdout.log").read_text() == "hi; touch pwned $(touch pwned2)\n"
        assert not (directory / "pwned").exists() and not (directory / "pwned2").exists()


async def test_environment_working_directory_and_streams(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    script = 'echo "$GREETING from $PWD home=$HOME"; echo oops >&2; env | wc -l >&2'
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("job.0", "sh", "-c", script, env={"GREETING": "hello"}))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        directory = tmp_path / "instances" / "job.0"
        resolved = directory.resolve()
        assert (directory / "stdout.log").read_text() == (
            f"hello from {resolved} home={resolved}\n"
        )
        oops, count = (directory / "stderr.log").read_text().split()
        assert oops == "oops"
        # PATH, HOME, LANG, GREETING, plus what sh itself sets (PWD, SHLVL): nothing of the
        # engine's own environment leaks in.
        assert int(count) <= 7
        assert engine.logs("job.0", "stderr", 1) == f"{count}\n"


async def test_the_replys_stop_and_start_lists_are_applied(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("old.0", "sleep", "30"))
        await eventually(lambda: engine.instances["old.0"].state is RUNNING)
        old_pid = engine.instances["old.0"].pid
        assert old_pid is not None
        wanted = spec("new.0", "sleep", "30")
        cluster.replies = [HeartbeatReply(stop=["old.0", "unknown.0"], start=[wanted, wanted])]
        await eventually(lambda: "old.0" not in engine.instances, what="old.0 forgotten")
        assert not pid_alive(old_pid)
        await eventually(lambda: engine.instances["new.0"].state is RUNNING)
        assert len(engine.instances) == 1
        await eventually(
            lambda: [s.instance_id for s in cluster.heartbeats[-1].instances] == ["new.0"],
            what="a heartbeat with only new.0",
        )


async def test_instances_keep_running_while_the_cluster_is_unreachable(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster, restart_backoff_s=0.01) as engine:
        engine.submit(spec("web.0", "sleep", "30"))
        await eventually(lambda: cluster.last_status("web.0") is not None)
        cluster.down = True
        await eventually(lambda: engine.reachable is False, what="the cluster seen unreachable")
        # A crash while the cluster is away is still handled.
        instance = engine.instances["web.0"]
        assert instance.pid is not None
        os.kill(instance.pid, signal.SIGKILL)
        await eventually(lambda: instance.restarts == 1 and instance.state is RUNNING)
        engine.submit(spec("web.1", "sleep", "30"))
        await eventually(lambda: engine.instances["web.1"].state is RUNNING)
        cluster.down = False
        await eventually(lambda: engine.reachable is True, what="the cluster back")

        def resynced() -> bool:
            ones = cluster.last_status("web.0"), cluster.last_status("web.1")
            return all(s is not None and s.state is RUNNING for s in ones)

        await eventually(resynced, what="the full state re-sent")
        status = cluster.last_status("web.0")
        assert status is not None and status.restarts == 1 and status.pid == instance.pid
        assert len(cluster.registrations) == 1


async def test_a_deleted_instance_is_forgotten_once_its_stop_was_reported(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("web.0", "sleep", "30"))
        await eventually(lambda: engine.instances["web.0"].state is RUNNING)
        await engine.stop("web.0")
        await eventually(lambda: "web.0" not in engine.instances, what="web.0 forgotten")
        status = cluster.last_status("web.0")
        assert status is not None and status.state is InstanceState.STOPPED
        assert status.detail == "stopped by request"


async def test_an_ended_instance_started_again_runs_afresh(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        engine.submit(spec("job.0", "sh", "-c", "echo run"))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        engine.submit(spec("job.0", "sh", "-c", "echo run"))
        await eventually(lambda: not engine.instances["job.0"].supervised)
        log = tmp_path / "instances" / "job.0" / "stdout.log"
        assert log.read_text().splitlines() == ["run", "run"]


async def test_closing_the_engine_stops_every_instance(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        # A child of the instance in the background: the whole group must go.
        engine.submit(spec("web.0", "sh", "-c", "sleep 30 & echo $! > child; wait"))
        child_file = tmp_path / "instances" / "web.0" / "child"
        await eventually(lambda: child_file.exists() and child_file.read_text().strip())
        pid = engine.instances["web.0"].pid
        child = int(child_file.read_text())
    assert pid is not None
    assert not pid_alive(pid) and not pid_alive(child)
    runs = json.loads((tmp_path / "instances.json").read_text())["runs"]
    assert runs == []


async def test_a_restarted_engine_reaps_what_a_previous_one_left(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    leftover = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        record = {
            "instance_id": "web.0",
            "runtime": "process",
            "pid": leftover.pid,
            "create_time": create_time_of(leftover.pid),
        }
        (tmp_path / "instances.json").write_text(json.dumps({"node": "node-a", "runs": [record]}))
        async with running_engine(tmp_path, cluster):
            assert leftover.wait(timeout=5) == -signal.SIGKILL
    finally:
        leftover.kill()
        leftover.wait()


async def test_a_recorded_pid_of_another_process_is_left_alone(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    bystander = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        created = create_time_of(bystander.pid)
        assert created is not None
        record = {"runtime": "process", "pid": bystander.pid, "create_time": created - 100.0}
        (tmp_path / "instances.json").write_text(json.dumps({"runs": [record]}))
        async with running_engine(tmp_path, cluster):
            assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


async def test_rlimit_fallback_fails_a_process_that_allocates_past_its_memory(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    allocate = "import sys; b = bytearray(int(sys.argv[1]) << 20); print('allocated')"
    limiter = RlimitLimiter("test")
    async with running_engine(tmp_path, cluster, limiter=limiter) as engine:
        for instance_id, mib in (("big.0", 1024), ("small.0", 16)):
            engine.submit(
                spec(
                    instance_id,
                    sys.executable,
                    "-c",
                    allocate,
                    str(mib),
                    restart=RestartPolicy.NEVER,
                    request={"id": instance_id, "memory_mib": 64, "cpu_m": 500},
                )
            )
        await eventually(
            lambda: not any(i.supervised for i in engine.instances.values()), timeout=10
        )
        big, small = engine.instances["big.0"], engine.instances["small.0"]
        assert big.state is InstanceState.FAILED
        assert "MemoryError" in engine.logs("big.0", "stderr", 5)  # type: ignore[operator]
        assert small.state is InstanceState.STOPPED
        assert engine.logs("small.0", "stdout", 1) == "allocated\n"


async def test_rlimit_fallback_says_the_cpu_quota_is_not_enforced(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster, limiter=RlimitLimiter("no cgroups")) as engine:
        engine.submit(spec("web.0", "sleep", "30", request={"id": "w", "cpu_m": 250}))
        await eventually(lambda: engine.instances["web.0"].state is RUNNING)
        assert engine.instances["web.0"].detail == "CPU quota not enforced (no cgroups)"


def test_instance_ids_that_could_leave_the_state_directory_are_refused() -> None:
    assert check_spec_id("web.0") is None
    assert check_spec_id("app_1.web-x+2.10") is None
    for bad in ("..", ".", "../etc", "a/b", ".hidden", "x" * 201, "a b"):
        assert check_spec_id(bad) is not None, bad


def test_tail_returns_the_last_lines_of_a_large_log(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_text("".join(f"line {n}\n" for n in range(50_000)))
    assert tail_lines(log, 3) == "line 49997\nline 49998\nline 49999\n"
    assert tail_lines(log, 0) == ""
    assert tail_lines(log, 20_000).count("\n") == 20_000
    log.write_text("a\nb")  # no final newline
    assert tail_lines(log, 1) == "b"
    assert tail_lines(log, 5) == "a\nb"


async def test_an_instance_that_cannot_enter_its_limits_fails(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    class BrokenGroups(Limiter):
        def apply(self, instance_id: str, cpu_m: int, memory_mib: int) -> AppliedLimits:
            return AppliedLimits(procs_files=(str(tmp_path / "gone" / "cgroup.procs"),))

    async with running_engine(tmp_path / "node", cluster, limiter=BrokenGroups()) as engine:
        engine.submit(spec("web.0", "sleep", "30"))
        await eventually(lambda: not engine.instances["web.0"].supervised)
        instance = engine.instances["web.0"]
        assert instance.state is InstanceState.FAILED
        assert instance.detail.startswith("cannot enter the instance's limits")
        assert instance.pid is None


async def test_registers_again_when_its_secret_is_refused(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        await eventually(lambda: cluster.heartbeats, what="a heartbeat")
        cluster.secret = "rotated"  # the manager no longer accepts the node's secret: 401
        await eventually(lambda: len(cluster.registrations) == 2, what="a second registration")
        beats = len(cluster.heartbeats)
        await eventually(lambda: len(cluster.heartbeats) > beats, what="heartbeats resumed")
        assert engine.secret == "secret-2"


async def test_a_start_in_a_reply_that_cannot_run_here_is_reported_failed(
    tmp_path: Path, cluster: FakeCluster
) -> None:
    async with running_engine(tmp_path, cluster) as engine:
        cluster.replies = [HeartbeatReply(start=[spec("../escape", "sleep", "30")])]

        def reported_failed() -> bool:
            status = cluster.last_status("../escape")
            return status is not None and status.state is InstanceState.FAILED

        await eventually(reported_failed, what="the refused start reported")
        status = cluster.last_status("../escape")
        assert status is not None and status.detail.startswith("instance_id:")
        assert not (tmp_path / "escape").exists()
        assert not engine.instances["../escape"].supervised
