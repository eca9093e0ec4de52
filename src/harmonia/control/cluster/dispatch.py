"""Placing instances on node engines, taking them off, and moving those of lost nodes.

The asynchronous half of the cluster manager: the :class:`~.manager.ClusterManager`
decides and reserves (synchronously, so no other request can slip between a decision and
its reservation), this module talks to the node engines and retries.

- :meth:`Dispatcher.place`: reserve a node, send the spec to it; a node that cannot be
  reached is released and excluded and the next one tried (Oakestra's cluster
  orchestrator gives up on the first; Bartolomeo et al., USENIX ATC'23).
- :meth:`Dispatcher.delete`: forget the instance and tell its node (best effort; an
  unreachable node hears it in its next heartbeat's ``stop`` list).
- :meth:`Dispatcher.watch_nodes` and :meth:`Dispatcher.retry_waiting`: the background
  loops that find dead nodes and place their instances elsewhere, with exponential
  backoff per instance while nothing fits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from urllib.parse import quote

import httpx

from harmonia.control.cluster.manager import ClusterManager, InstanceRecord, NodeRecord
from harmonia.control.protocol import InstanceSpec, InstanceStatus, PlaceReply
from harmonia.control.transport import Peer, PeerError
from harmonia.model import InstanceState

log = logging.getLogger("harmonia.control.cluster")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
# Node calls fail fast: a node that refuses a connection is tried once more, then the
# next node is; a lost node is caught by the heartbeat watch anyway.
NODE_CALL_RETRIES = 1
NODE_CALL_BACKOFF_S = 0.05
# Instance ids end up in node engines' URL paths and log file names: keep them plain.
INSTANCE_ID_RULE = "letters, digits, '.', '_' and '-' only, at most 255, not starting with '.'"
_INSTANCE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$")


def valid_instance_id(instance_id: str) -> bool:
    return _INSTANCE_ID.fullmatch(instance_id) is not None


# Order of the lifecycle, to tell an answer that arrives late from a newer state.
_LIFECYCLE_RANK = {
    InstanceState.REQUESTED: 0,
    InstanceState.CLUSTER_SCHEDULED: 1,
    InstanceState.NODE_SCHEDULED: 2,
    InstanceState.RUNNING: 3,
    InstanceState.FAILED: 4,
    InstanceState.STOPPED: 4,
}


def backoff_delay(attempts: int) -> float:
    """Delay before try ``attempts + 1`` of a waiting instance: 0.5 s doubling to 8 s."""
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1)))


class Dispatcher:
    """Carries the manager's placements to node engines over ``client``."""

    def __init__(self, manager: ClusterManager, client: httpx.AsyncClient) -> None:
        self.manager = manager
        self.client = client
        # Waiting instances: when each may be tried again, and how often it was tried.
        self._due: dict[str, float] = {}
        self._attempts: dict[str, int] = {}
        self._placing: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        for instance_id in manager.pending_ids():
            self._due[instance_id] = 0.0

    def node_peer(self, record: NodeRecord) -> Peer:
        return Peer(
            self.client,
            record.url,
            record.secret,
            retries=NODE_CALL_RETRIES,
            backoff_s=NODE_CALL_BACKOFF_S,
        )

    # -- placing -------------------------------------------------------------------------

    async def place(self, spec: InstanceSpec, *, keep_waiting: bool = False) -> PlaceReply:
        """Place ``spec`` on a node and send it there. Idempotent on the instance id: an
        instance already placed (or being placed) is answered with its node.

        When no node fits (or none can be reached): with ``keep_waiting`` the instance
        stays REQUESTED here and is tried again with backoff; without it, it is forgotten
        and the reply says ``placed=False`` with the reasons."""
        instance_id = spec.instance_id
        manager = self.manager
        known = manager.instances.get(instance_id)
        if known is not None:
            if known.node is not None and not known.finished:
                return PlaceReply(placed=True, instance_id=instance_id, node=known.node)
            if known.finished:
                manager.forget(instance_id)  # placed again after it ended: a fresh start
        self._due.pop(instance_id, None)
        excluded: list[str] = []
        failures: list[str] = []
        while True:
            decision = manager.reserve_for(spec, excluded)
            if decision.node is None:
                reasons = failures + list(decision.reasons)
                if keep_waiting:
                    manager.keep_waiting(spec, "; ".join(reasons) or "no node fits")
                    self._wait(instance_id)
                else:
                    self._attempts.pop(instance_id, None)
                    if instance_id in manager.instances:
                        manager.forget(instance_id)
                return PlaceReply(placed=False, instance_id=instance_id, reasons=reasons)
            node = decision.node
            self._placing.add(instance_id)
            status: InstanceStatus | None = None
            error = ""
            try:
                status = await self._send(node, spec)
            except PeerError as exc:
                error = str(exc)
            finally:
                self._placing.discard(instance_id)
            instance = manager.instances.get(instance_id)
            if instance is None or instance.node != node:
                # Deleted or moved while the spec was on its way; the node's next
                # heartbeat reconciles whatever arrived there.
                current = instance.node if instance is not None else None
                return PlaceReply(placed=current is not None, instance_id=instance_id, node=current)
            if status is not None:
                self._attempts.pop(instance_id, None)
                self._apply_reply(instance, status)
                return PlaceReply(placed=True, instance_id=instance_id, node=node)
            log.warning(
                "instance %s: node %s unreachable, trying another: %s", instance_id, node, error
            )
            failures.append(f"node {node} unreachable")
            manager.unassign(instance_id, f"node {node} unreachable")
            excluded.append(node)

    async def _send(self, node: str, spec: InstanceSpec) -> InstanceStatus:
        record = self.manager.nodes[node]
        reply = await self.node_peer(record).call(
            "POST", "/api/instances", body=spec, reply=InstanceStatus
        )
        assert isinstance(reply, InstanceStatus)
        return reply

    def _apply_reply(self, instance: InstanceRecord, status: InstanceStatus) -> None:
        if status.instance_id != instance.instance_id:
            log.warning(
                "node %s answered for %s when sent %s; ignored",
                instance.node,
                status.instance_id,
                instance.instance_id,
            )
            return
        if _LIFECYCLE_RANK[status.state] < _LIFECYCLE_RANK[instance.state]:
            # A heartbeat overtook this reply (the node reported the instance RUNNING
            # before its answer to the POST arrived): the reply is the older news.
            return
        self.manager.apply_status(instance, status)

    # -- deleting and logs -------------------------------------------------------------------

    async def delete(self, instance_id: str) -> None:
        """Forget ``instance_id`` and ask its node to stop it. Idempotent."""
        self._due.pop(instance_id, None)
        self._attempts.pop(instance_id, None)
        instance = self.manager.forget(instance_id)
        if instance is None or instance.node is None:
            return
        record = self.manager.nodes.get(instance.node)
        if record is None or not record.healthy:
            return  # the heartbeat ``stop`` list tells it when it is back
        peer = self.node_peer(record)
        peer.retries = 0
        try:
            await peer.call(
                "DELETE", f"/api/instances/{quote(instance_id, safe='')}", ok=(200, 202, 204, 404)
            )
        except PeerError as exc:
            log.info(
                "instance %s: stop not delivered to node %s (%s)", instance_id, record.name, exc
            )

    async def logs(self, instance: InstanceRecord, stream: str, tail: int) -> httpx.Response:
        """The node's answer to a log request for ``instance`` (raw, any status)."""
        assert instance.node is not None
        peer = self.node_peer(self.manager.nodes[instance.node])
        peer.retries = 0
        response = await peer.call(
            "GET",
            f"/api/instances/{quote(instance.instance_id, safe='')}/logs",
            params={"stream": stream, "tail": tail},
            ok=tuple(range(200, 600)),
        )
        assert isinstance(response, httpx.Response)
        return response

    # -- waiting instances and lost nodes ------------------------------------------------------

    def _wait(self, instance_id: str) -> None:
        attempts = self._attempts.get(instance_id, 0) + 1
        self._attempts[instance_id] = attempts
        self._due[instance_id] = time.monotonic() + backoff_delay(attempts)
        self._wake.set()

    def enqueue(self, instance_ids: list[str]) -> None:
        """Try to place ``instance_ids`` (waiting here, without a node) now."""
        for instance_id in instance_ids:
            self._due[instance_id] = 0.0
        if instance_ids:
            self._wake.set()

    def capacity_changed(self) -> None:
        """Something was released or a node came: waiting instances may fit now."""
        if self._due:
            now = time.monotonic()
            for instance_id, due in self._due.items():
                self._due[instance_id] = min(due, now)
            self._wake.set()

    def waiting(self) -> dict[str, float]:
        """Waiting instance ids and when each is tried next (``time.monotonic()``)."""
        return dict(self._due)

    async def retry_waiting(self) -> None:
        """Loop: place waiting instances when due; sleeps until the next is due."""
        while True:
            now = time.monotonic()
            due = [i for i, at in self._due.items() if at <= now]
            for instance_id in due:
                del self._due[instance_id]
                instance = self.manager.instances.get(instance_id)
                if instance is None or not instance.pending or instance_id in self._placing:
                    continue  # deleted, re-adopted by its node, or already on its way
                task = asyncio.create_task(self._retry(instance.spec))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._wake.clear()
            timeout = min(self._due.values(), default=now + 3600.0) - time.monotonic()
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def _retry(self, spec: InstanceSpec) -> None:
        try:
            reply = await self.place(spec, keep_waiting=True)
        except Exception:  # a bug must not end the retry loop; the next try may work
            log.exception("instance %s: retry failed", spec.instance_id)
            self._wait(spec.instance_id)
            return
        if reply.placed:
            log.info("instance %s placed on %s", spec.instance_id, reply.node)

    async def watch_nodes(self) -> None:
        """Loop: every half heartbeat interval, find dead nodes and move their instances
        (and release what instances ended for good hold)."""
        interval = self.manager.heartbeat_interval_s / 2
        while True:
            await asyncio.sleep(interval)
            self.manager.settle()
            moved = self.manager.detect_dead()
            if moved:
                for instance_id in moved:
                    self._attempts.pop(instance_id, None)
                self.enqueue(moved)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "INSTANCE_ID_RULE",
    "Dispatcher",
    "backoff_delay",
    "valid_instance_id",
]
