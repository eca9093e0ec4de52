"""The ``process`` runtime: an instance's ``cmd`` as a subprocess, never through a shell.

Each run gets its own session (so its process group can be signalled as a whole), the
instance's directory as working directory and ``HOME``, a minimal environment plus the
spec's ``env``, and its output appended to the instance's log files. Between fork and
exec the child enters its CPU/memory limits (:mod:`harmonia.control.node.limits`) and
asks the kernel to kill it if the engine dies (``PR_SET_PDEATHSIG``): a killed engine's
instances are rescheduled elsewhere by the cluster, and must not run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from harmonia.control.node.limits import AppliedLimits
from harmonia.control.node.runtimes import (
    DEFAULT_PATH,
    STDERR_LOG,
    STDOUT_LOG,
    InstanceRuntime,
    RunHandle,
    StartError,
)
from harmonia.control.node.usage import create_time_of, process_alive
from harmonia.control.protocol import InstanceSpec

PR_SET_PDEATHSIG = 1

_libc: Any = None


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, loaded once in the engine (not in a forked child)."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name, use_errno=True) if name else False
        except OSError:
            _libc = False
    return getattr(_libc, "prctl", None) if _libc else None


def instance_environment(directory: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {"PATH": DEFAULT_PATH, "HOME": str(directory), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ProcessHandle(RunHandle):
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = process.pid
        self.create_time = create_time_of(process.pid)

    async def wait(self) -> int:
        code = await self.process.wait()
        # The leader is gone; what it left in its group (children it started in the
        # background) ends with it. The group id cannot be reused while members remain.
        kill_group(self.pid, signal.SIGKILL)
        return code

    async def terminate(self, grace_s: float) -> None:
        if self.process.returncode is None:
            kill_group(self.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                kill_group(self.pid, signal.SIGKILL)
                await self.process.wait()
        kill_group(self.pid, signal.SIGKILL)

    def record(self) -> dict[str, Any]:
        return {"runtime": "process", "pid": self.pid, "create_time": self.create_time}


class ProcessRuntime(InstanceRuntime):
    name = "process"

    async def start(self, spec: InstanceSpec, directory: Path, limits: AppliedLimits) -> RunHandle:
        directory.mkdir(parents=True, exist_ok=True)
        prctl = _prctl()

        def in_child() -> None:
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
            limits.enter()

        with (
            open(directory / STDOUT_LOG, "ab") as stdout,
            open(directory / STDERR_LOG, "ab") as stderr,
        ):
            try:
                process = await asyncio.create_subprocess_exec(
                    *spec.cmd,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    cwd=directory,
                    env=instance_environment(directory, spec.env),
                    start_new_session=True,
                    preexec_fn=in_child,
                )
            except FileNotFoundError as exc:
                raise StartError(f"cmd: {spec.cmd[0]!r} not found") from exc
            except PermissionError as exc:
                raise StartError(f"cmd: {spec.cmd[0]!r} is not executable") from exc
            except OSError as exc:
                raise StartError(f"cmd: cannot start {spec.cmd[0]!r}: {exc}") from exc
            except Exception as exc:  # SubprocessError: the child setup (limits) failed
                raise StartError(f"cannot enter the instance's limits: {exc}") from exc
        return ProcessHandle(process)

    async def reap(self, record: dict[str, Any]) -> None:
        pid = record.get("pid")
        create_time = record.get("create_time")
        # Without its creation time a recorded pid may name an unrelated process by now.
        if not isinstance(pid, int) or pid <= 1 or not isinstance(create_time, float):
            return
        if process_alive(pid, create_time):
            kill_group(pid, signal.SIGKILL)


__all__ = ["ProcessHandle", "ProcessRuntime", "instance_environment", "kill_group"]
