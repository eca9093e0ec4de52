"""The node engine: runs a node's instances and keeps its cluster manager informed.

Like Oakestra's node engine (Bartolomeo et al., USENIX ATC'23) it is the only tier that
touches processes, and it does not depend on the tiers above to keep them alive:

- **Registration**: ``POST /api/nodes/register`` with the join token, retried with
  backoff until the cluster manager answers; the reply's secret authenticates every
  later call in both directions. A heartbeat answered 401 or 404 means the manager
  restarted or forgot this node: register again and carry on.
- **Heartbeats** every ``heartbeat_interval_s`` and promptly (debounced) after any state
  change, with the machine's usage and the status of every instance the engine knows.
  The reply's ``stop`` and ``start`` lists re-sync the engine with what the manager wants.
- **Instances**: one supervisor task per instance starts a run through its runtime,
  waits for it to end, records the transition and restarts it per its policy with
  exponential backoff (0.2 s doubling to 5 s), while ``restarts`` is below the smaller
  of the spec's and the engine's ``max_restarts``. A start that cannot succeed (no such
  command, no runc, a bad image) fails at once and is not restarted.
- **Unreachable cluster**: nothing stops; heartbeats keep being tried and the next one
  that gets through carries the full state.
- **Leftovers**: the runs in progress are kept in ``<state_dir>/instances.json`` (pids
  with their creation times, container ids). A restarted engine kills what a previous one
  left running (best effort), since the cluster has rescheduled those instances anyway;
  the ``process`` runtime also asks the kernel to kill each run when the engine dies.

This module knows nothing of HTTP serving; :mod:`harmonia.control.node.app` exposes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harmonia.control.config import NodeConfig
from harmonia.control.node.limits import AppliedLimits, Limiter, detect
from harmonia.control.node.runtimes import LOG_STREAMS, InstanceRuntime, RunHandle, StartError
from harmonia.control.node.runtimes.oci import OciRuntime
from harmonia.control.node.runtimes.process import ProcessRuntime
from harmonia.control.node.usage import UsageMeter
from harmonia.control.protocol import (
    Heartbeat,
    HeartbeatReply,
    InstanceSpec,
    InstanceState,
    InstanceStatus,
    NodeRegistration,
    Registered,
    RestartPolicy,
    Runtime,
)
from harmonia.control.transport import Peer, PeerError

log = logging.getLogger(__name__)

GRACE_S = 3.0
RESTART_BACKOFF_S = 0.2
RESTART_BACKOFF_MAX_S = 5.0
REGISTER_BACKOFF_S = 0.2
REGISTER_BACKOFF_MAX_S = 5.0
# Transitions that come together (a crash and its restart, a batch of starts) share one
# prompt heartbeat.
PROMPT_DEBOUNCE_S = 0.015
INSTANCES_FILE = "instances.json"
MAX_TAIL_LINES = 10_000

# An instance id names a directory: letters, digits and ``_.+-``, not starting with a dot
# (so never ``.`` or ``..``).
INSTANCE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")


def check_spec_id(instance_id: str) -> str | None:
    if INSTANCE_ID.match(instance_id):
        return None
    return (
        "instance_id: must be 1-200 letters, digits or '_.+-', not starting with '.' "
        f"(got {instance_id!r})"
    )


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether ``event`` was set within ``timeout_s``.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11, ``wait_for``
    swallows a cancellation that arrives just as the event is set, which left the control
    loop running after close()."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with status {code}"


def tail_lines(path: Path, count: int) -> str:
    """The last ``count`` lines of ``path``, read from its end (logs can be large)."""
    if count <= 0:
        return ""
    block = 64 * 1024
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        position = file.tell()
        data = b""
        # One newline more than lines wanted: the first line read may be partial.
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
    lines = data.splitlines(keepends=True)[-count:]
    return b"".join(lines).decode("utf-8", errors="replace")


@dataclass
class Instance:
    """An instance as this engine runs it."""

    spec: InstanceSpec
    state: InstanceState = InstanceState.NODE_SCHEDULED
    at: float = field(default_factory=time.time)
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None
    detail: str = ""
    handle: RunHandle | None = None
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    # Set by stop(): ends a restart backoff early.
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Stopped by the API: forgotten once a heartbeat carrying its end got through.
    forget_when_reported: bool = False

    @property
    def instance_id(self) -> str:
        return self.spec.instance_id

    @property
    def supervised(self) -> bool:
        """A run is in progress or will be (starting, running, waiting to restart)."""
        return self.task is not None and not self.task.done()

    def status(self, node: str) -> InstanceStatus:
        return InstanceStatus(
            instance_id=self.instance_id,
            state=self.state,
            at=self.at,
            node=node,
            pid=self.pid,
            restarts=self.restarts,
            started_at=self.started_at,
            detail=self.detail,
        )


class Engine:
    """A node engine for ``config``, reachable by its cluster manager at ``url``."""

    def __init__(
        self,
        config: NodeConfig,
        url: str,
        client: httpx.AsyncClient | None = None,
        *,
        limiter: Limiter | None = None,
        runtimes: dict[Runtime, InstanceRuntime] | None = None,
        grace_s: float = GRACE_S,
        restart_backoff_s: float = RESTART_BACKOFF_S,
        restart_backoff_max_s: float = RESTART_BACKOFF_MAX_S,
        register_backoff_max_s: float = REGISTER_BACKOFF_MAX_S,
    ) -> None:
        self.config = config
        self.url = url
        self.name = config.node.name
        self.state_dir = config.state_dir
        self.instances_dir = config.state_dir / "instances"
        self._client = client
        self._owns_client = client is None
        self.limiter = limiter
        self.runtimes: dict[Runtime, InstanceRuntime] = runtimes or {
            Runtime.PROCESS: ProcessRuntime(),
            Runtime.OCI: OciRuntime(config.state_dir / "runc"),
        }
        self.grace_s = grace_s
        self.restart_backoff_s = restart_backoff_s
        self.restart_backoff_max_s = restart_backoff_max_s
        self.register_backoff_max_s = register_backoff_max_s
        self.instances: dict[str, Instance] = {}
        self.secret: str | None = None
        self.node_id: str | None = None
        # Whether the last heartbeat got through (None: none tried yet).
        self.reachable: bool | None = None
        self.heartbeats_sent = 0
        self._usage = UsageMeter()
        self._prompt = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- life of the engine ---------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def start(self) -> None:
        """Reap what a previous engine left, detect the limits, start talking to the
        cluster manager (in the background: instances can be started before that)."""
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        await self._reap_leftovers()
        if self.limiter is None:
            self.limiter = detect(self.name, use_cgroups=self.config.use_cgroups)
        log.info("node %s: instance limits through %s", self.name, self.limiter.kind)
        self._loop_task = asyncio.create_task(self._control_loop(), name="node-control")

    async def close(self) -> None:
        """Stop talking to the cluster, stop every instance (no orphans), clean up."""
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await asyncio.gather(
            *[
                self.stop(instance_id, reason="node engine stopped")
                for instance_id in self.instances
            ],
            return_exceptions=True,
        )
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.limiter is not None:
            self.limiter.cleanup()
        self._persist()
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    # -- instances --------------------------------------------------------------------------

    def problem(self, spec: InstanceSpec) -> str | None:
        """Why ``spec`` cannot run here ('field: problem'), or None."""
        problem = check_spec_id(spec.instance_id)
        if problem:
            return problem
        runtime = self.runtimes.get(spec.runtime)
        if runtime is None:
            return f"runtime: {spec.runtime.value!r} is not available on this node"
        return runtime.check(spec)

    def submit(self, spec: InstanceSpec) -> InstanceStatus:
        """Start ``spec`` unless it is already starting, running or restarting here.

        Idempotent on ``instance_id``; an instance that has ended (stopped, failed for
        good) is started afresh, since the caller wants it running."""
        existing = self.instances.get(spec.instance_id)
        if existing is not None and existing.supervised:
            return existing.status(self.name)
        instance = Instance(spec=spec)
        self.instances[spec.instance_id] = instance
        problem = self.problem(spec)
        if problem:
            self._transition(instance, InstanceState.FAILED, problem)
            return instance.status(self.name)
        instance.task = asyncio.create_task(
            self._supervise(instance), name=f"instance-{spec.instance_id}"
        )
        self._changed()
        return instance.status(self.name)

    async def stop(
        self, instance_id: str, *, forget: bool = False, reason: str = "stopped by request"
    ) -> None:
        """Stop ``instance_id`` (SIGTERM, SIGKILL after the grace period); never restarts
        it. Idempotent; unknown ids are ignored."""
        instance = self.instances.get(instance_id)
        if instance is None:
            return
        was_running = instance.supervised
        instance.stopping = True
        instance.wake.set()
        handle = instance.handle
        if handle is not None:
            await handle.terminate(self.grace_s)
        if instance.task is not None:
            await asyncio.gather(instance.task, return_exceptions=True)
        if was_running and instance.state is not InstanceState.STOPPED:
            self._transition(instance, InstanceState.STOPPED, reason)
        if forget and self.instances.get(instance_id) is instance:
            del self.instances[instance_id]
            self._persist()
        elif not forget:
            instance.forget_when_reported = True

    def status(self, instance_id: str) -> InstanceStatus | None:
        instance = self.instances.get(instance_id)
        return instance.status(self.name) if instance is not None else None

    def statuses(self) -> list[InstanceStatus]:
        return [instance.status(self.name) for instance in self.instances.values()]

    def instance_dir(self, instance_id: str) -> Path:
        return self.instances_dir / instance_id

    def logs(self, instance_id: str, stream: str, tail: int) -> str | None:
        """The last ``tail`` lines of an instance's ``stream``; None for an unknown instance.

        Logs outlive the instance record, so an instance that ended and was forgotten
        still has its logs."""
        if check_spec_id(instance_id) is not None:
            return None
        directory = self.instance_dir(instance_id)
        if instance_id not in self.instances and not directory.is_dir():
            return None
        path = directory / LOG_STREAMS[stream]
        if not path.is_file():
            return ""
        return tail_lines(path, min(tail, MAX_TAIL_LINES))

    async def _supervise(self, instance: Instance) -> None:
        try:
            await self._run_with_restarts(instance)
        except Exception as exc:  # a defect here must not leave the instance RUNNING
            log.exception("instance %s: supervisor failed", instance.instance_id)
            if instance.handle is not None:
                await instance.handle.terminate(self.grace_s)
                instance.handle = None
            instance.pid = None
            self._transition(instance, InstanceState.FAILED, f"node engine error: {exc!r}")

    async def _run_with_restarts(self, instance: Instance) -> None:
        spec = instance.spec
        runtime = self.runtimes[spec.runtime]
        directory = self.instance_dir(spec.instance_id)
        limiter = self.limiter or Limiter()
        uses_limits = isinstance(runtime, ProcessRuntime)
        max_restarts = min(spec.max_restarts, self.config.max_restarts)
        while True:
            applied = AppliedLimits()
            try:
                if uses_limits:
                    request = spec.request
                    applied = limiter.apply(spec.instance_id, request.cpu_m, request.memory_mib)
                handle = await runtime.start(spec, directory, applied)
            except (StartError, OSError) as exc:
                limiter.release(spec.instance_id)
                instance.pid = None
                self._transition(instance, InstanceState.FAILED, str(exc))
                return
            if instance.stopping:
                await handle.terminate(self.grace_s)
                limiter.release(spec.instance_id)
                return
            instance.handle = handle
            instance.pid = handle.pid
            instance.started_at = time.time()
            self._transition(instance, InstanceState.RUNNING, applied.detail)
            self._persist()
            code = await handle.wait()
            instance.handle = None
            instance.pid = None
            detail = describe_exit(code)
            if code != 0 and uses_limits and limiter.out_of_memory(spec.instance_id):
                detail += f" (out of memory: limit {spec.request.memory_mib} MiB)"
            limiter.release(spec.instance_id)
            self._persist()
            if instance.stopping:
                return
            ended = InstanceState.STOPPED if code == 0 else InstanceState.FAILED
            wanted = spec.restart is RestartPolicy.ALWAYS or (
                spec.restart is RestartPolicy.ON_FAILURE and code != 0
            )
            if not wanted:
                self._transition(instance, ended, detail)
                return
            if instance.restarts >= max_restarts:
                self._transition(
                    instance, ended, f"{detail}; gave up after {max_restarts} restarts"
                )
                return
            delay = min(self.restart_backoff_max_s, self.restart_backoff_s * 2**instance.restarts)
            self._transition(instance, ended, f"{detail}; restarting in {delay:.1f} s")
            await wait_event(instance.wake, delay)
            if instance.stopping:
                return
            instance.restarts += 1

    def _transition(self, instance: Instance, state: InstanceState, detail: str = "") -> None:
        instance.state = state
        instance.at = time.time()
        instance.detail = detail
        log.info("instance %s: %s %s", instance.instance_id, state.value, detail)
        self._changed()

    def _changed(self) -> None:
        self._prompt.set()

    # -- leftovers of a previous engine -----------------------------------------------------

    def _persist(self) -> None:
        """Record the runs in progress (atomically: a reader never sees half a file)."""
        runs = [
            {"instance_id": instance.instance_id, **instance.handle.record()}
            for instance in self.instances.values()
            if instance.handle is not None
        ]
        path = self.state_dir / INSTANCES_FILE
        tmp = path.with_name(f".{INSTANCES_FILE}.tmp")
        try:
            tmp.write_text(json.dumps({"node": self.name, "runs": runs}), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.warning("cannot record runs in %s: %s", path, exc)

    async def _reap_leftovers(self) -> None:
        path = self.state_dir / INSTANCES_FILE
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        runs = data.get("runs", []) if isinstance(data, dict) else []
        for run in runs if isinstance(runs, list) else []:
            if not isinstance(run, dict):
                continue
            runtime = self.runtimes.get(
                Runtime.OCI if run.get("runtime") == "oci" else Runtime.PROCESS
            )
            if runtime is not None:
                log.info("reaping %s left by a previous engine", run.get("instance_id"))
                await runtime.reap(run)
        with contextlib.suppress(OSError):
            path.unlink()

    # -- the cluster manager ----------------------------------------------------------------

    async def _control_loop(self) -> None:
        peer = Peer(self.client, self.config.cluster_url, retries=0)
        while not self._closed:
            if self.secret is None:
                await self._register(peer)
            try:
                await self._heartbeat(peer)
            except PeerError as exc:
                if exc.status in (401, 404):
                    log.warning(
                        "node %s: cluster does not know it (%s); registering", self.name, exc
                    )
                    self.secret = None
                    continue
                if self.reachable is not False:
                    log.warning("node %s: cluster unreachable: %s", self.name, exc)
                self.reachable = False
            await self._wait_next()

    async def _wait_next(self) -> None:
        if await wait_event(self._prompt, self.config.heartbeat_interval_s):
            await asyncio.sleep(PROMPT_DEBOUNCE_S)
        self._prompt.clear()

    async def _register(self, peer: Peer) -> None:
        registration = NodeRegistration(
            node=self.config.node, url=self.url, join_token=self.config.join_token
        )
        delay = REGISTER_BACKOFF_S
        peer.secret = ""
        while True:
            try:
                reply = await peer.call(
                    "POST", "/api/nodes/register", body=registration, reply=Registered
                )
            except PeerError as exc:
                log.warning(
                    "node %s: registration failed: %s (retry in %.1f s)", self.name, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(self.register_backoff_max_s, delay * 2)
                continue
            assert isinstance(reply, Registered)
            self.secret = reply.secret
            self.node_id = reply.id
            peer.secret = reply.secret
            log.info("node %s: registered as %s", self.name, reply.id)
            return

    async def _heartbeat(self, peer: Peer) -> None:
        # Cleared before the snapshot: a change during the call triggers the next one.
        self._prompt.clear()
        reported = {
            instance.instance_id: instance
            for instance in self.instances.values()
            if instance.forget_when_reported and not instance.supervised
        }
        heartbeat = Heartbeat(usage=self._usage.sample(), instances=self.statuses())
        reply = await peer.call(
            "POST", f"/api/nodes/{self.name}/heartbeat", body=heartbeat, reply=HeartbeatReply
        )
        assert isinstance(reply, HeartbeatReply)
        self.heartbeats_sent += 1
        if self.reachable is False:
            log.info("node %s: cluster reachable again", self.name)
        self.reachable = True
        for instance_id, instance in reported.items():
            if self.instances.get(instance_id) is instance:
                del self.instances[instance_id]
        self._apply(reply)

    def _apply(self, reply: HeartbeatReply) -> None:
        for instance_id in reply.stop:
            if instance_id in self.instances:
                self._in_background(
                    self.stop(instance_id, forget=True, reason="stopped by cluster")
                )
        for spec in reply.start:
            if not self._closed:
                self.submit(spec)

    def _in_background(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


__all__ = ["GRACE_S", "Engine", "Instance", "check_spec_id", "describe_exit", "tail_lines"]
