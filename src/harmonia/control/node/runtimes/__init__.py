"""Runtimes: how a node engine turns an :class:`InstanceSpec` into a running process.

A runtime starts one run of an instance and returns a :class:`RunHandle`; the engine
(:mod:`harmonia.control.node.engine`) owns the lifecycle around it (states, restarts,
heartbeats). Two runtimes, after Oakestra's node engine (Bartolomeo et al., USENIX ATC'23),
which runs containers and unikernels side by side:

- ``process`` (:mod:`.process`): the spec's ``cmd`` as a subprocess in its own session;
- ``oci`` (:mod:`.oci`): an OCI bundle run by ``runc`` in the foreground.

Both write the instance's standard output and error to ``stdout.log`` / ``stderr.log`` in
the instance's directory, so the logs API reads one place whatever the runtime.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

from harmonia.control.node.limits import AppliedLimits
from harmonia.control.protocol import InstanceSpec
from harmonia.model import HarmoniaError

STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
LOG_STREAMS = {"stdout": STDOUT_LOG, "stderr": STDERR_LOG}

# PATH for instances: the usual system directories, not the engine's own PATH, which may
# name a virtual environment or a user's directories.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class StartError(HarmoniaError):
    """An instance cannot be started at all (no such command, no runc, a bad image).

    Permanent: the engine marks the instance FAILED and does not restart it, since a
    restart would fail the same way."""


class RunHandle(abc.ABC):
    """One run of an instance: its main process, until it exits."""

    pid: int

    @abc.abstractmethod
    async def wait(self) -> int:
        """Wait for the run to end; its exit status (negative: killed by that signal)."""

    @abc.abstractmethod
    async def terminate(self, grace_s: float) -> None:
        """Ask the run to stop (SIGTERM), kill it after ``grace_s`` seconds; returns once
        it is gone."""

    @abc.abstractmethod
    def record(self) -> dict[str, Any]:
        """What a later engine needs to reap this run if this engine dies (JSON data)."""


class InstanceRuntime(abc.ABC):
    """Starts runs of instances."""

    name: str

    def check(self, spec: InstanceSpec) -> str | None:
        """A problem with ``spec`` for this runtime ('field: problem'), or None."""
        return None

    @abc.abstractmethod
    async def start(self, spec: InstanceSpec, directory: Path, limits: AppliedLimits) -> RunHandle:
        """Start one run of ``spec`` in ``directory``; raises :class:`StartError`."""

    @abc.abstractmethod
    async def reap(self, record: dict[str, Any]) -> None:
        """Kill a run left behind by a previous engine (best effort, never raises)."""


__all__ = [
    "DEFAULT_PATH",
    "LOG_STREAMS",
    "STDERR_LOG",
    "STDOUT_LOG",
    "InstanceRuntime",
    "RunHandle",
    "StartError",
]
