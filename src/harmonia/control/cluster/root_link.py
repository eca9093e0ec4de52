"""The cluster manager's link to the root: registration once, then reports.

Registration spends the root's single-use join token, so the identity it earns (id and
secret) is stored and reused by every later start; until the root answers, the manager
retries with capped backoff while already serving its nodes.

Reports carry every node and every instance (Oakestra's cluster managers report
aggregated capacity upward periodically; Bartolomeo et al., USENIX ATC'23). They go out
every ``report_interval_s`` and, debounced by :data:`REPORT_DEBOUNCE_S`, soon after any
change, so that the root sees an instance RUNNING within tens of milliseconds of its
node saying so. The root's reply re-syncs the two: ``stop`` lists instances the root
dropped, ``start`` instances it placed here that the report did not carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from harmonia.control.cluster.dispatch import INSTANCE_ID_RULE, Dispatcher, valid_instance_id
from harmonia.control.cluster.manager import ClusterManager
from harmonia.control.cluster.store import ClusterStore
from harmonia.control.config import ClusterConfig
from harmonia.control.protocol import ClusterRegistration, Registered, ReportReply
from harmonia.control.transport import Peer, PeerError

log = logging.getLogger("harmonia.control.cluster")

REPORT_DEBOUNCE_S = 0.02
# Prompt reports leave at least this many times a report's own cost between them, so that
# reporting takes at most a fifth of the manager's time however large the cluster.
REPORT_COST_FACTOR = 4.0
REGISTER_BACKOFF_FIRST_S = 0.2
REGISTER_BACKOFF_MAX_S = 5.0


def retry_delay(failures: int) -> float:
    """Delay after ``failures`` failed calls to the root: 0.2 s doubling to 5 s."""
    return float(min(REGISTER_BACKOFF_MAX_S, REGISTER_BACKOFF_FIRST_S * 2 ** max(0, failures - 1)))


class RootLink:
    """Registers this cluster with the root and keeps the root up to date."""

    def __init__(
        self,
        config: ClusterConfig,
        manager: ClusterManager,
        dispatcher: Dispatcher,
        client: httpx.AsyncClient,
        url: str,
        store: ClusterStore | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self.dispatcher = dispatcher
        self.client = client
        self.url = url
        self.store = store
        self.identity: tuple[str, str] | None = store.load_identity() if store else None
        self.reports_sent = 0
        self.root_reachable = False
        self._poked = asyncio.Event()

    @property
    def cluster_id(self) -> str | None:
        return self.identity[0] if self.identity else None

    @property
    def secret(self) -> str | None:
        return self.identity[1] if self.identity else None

    def poke(self) -> None:
        """Something changed: report soon."""
        self._poked.set()

    async def run(self) -> None:
        """Register if needed, then report until cancelled."""
        await self.register()
        await self._report_loop()

    async def register(self) -> None:
        """Register with the root unless an identity is stored; retries until it works."""
        failures = 0
        peer = Peer(self.client, self.config.root_url, retries=0)
        registration = ClusterRegistration(
            name=self.config.name,
            url=self.url,
            join_token=self.config.root_join_token,
            location=self.config.location,
        )
        last_error = ""
        while self.identity is None:
            try:
                reply = await peer.call(
                    "POST", "/api/clusters/register", body=registration, reply=Registered
                )
            except PeerError as exc:
                failures += 1
                delay = retry_delay(failures)
                # Said once per distinct problem, not on every retry of a long outage.
                level = logging.WARNING if str(exc) != last_error else logging.DEBUG
                log.log(level, "registration with the root failed (retrying): %s", exc)
                last_error = str(exc)
                await asyncio.sleep(delay)
                continue
            assert isinstance(reply, Registered)
            if self.store is not None:
                self.store.save_identity(reply.id, reply.secret)
            self.identity = (reply.id, reply.secret)
            log.info("registered with the root as cluster %s", reply.id)
        self.poke()

    async def report_once(self) -> ReportReply:
        """Send one report and return the root's reply (raises :class:`PeerError`)."""
        assert self.identity is not None, "report before registration"
        cluster_id, secret = self.identity
        peer = Peer(self.client, self.config.root_url, secret, retries=0)
        reply = await peer.call(
            "POST",
            f"/api/clusters/{cluster_id}/report",
            body=self.manager.report(),
            reply=ReportReply,
        )
        assert isinstance(reply, ReportReply)
        self.reports_sent += 1
        return reply

    async def apply(self, reply: ReportReply) -> None:
        """Do what the root's reply asks: stop what it dropped, place what it expects."""
        for instance_id in reply.stop:
            log.info("instance %s dropped by the root", instance_id)
            await self.dispatcher.delete(instance_id)
        for spec in reply.start:
            if spec.instance_id in self.manager.instances:
                continue
            if not valid_instance_id(spec.instance_id):
                log.warning(
                    "instance id %r from the root refused: %s", spec.instance_id, INSTANCE_ID_RULE
                )
                continue
            result = await self.dispatcher.place(spec)
            if not result.placed:
                log.warning(
                    "instance %s from the root does not fit: %s",
                    spec.instance_id,
                    "; ".join(result.reasons),
                )

    async def _report_loop(self) -> None:
        failures = 0
        last_cost = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self.config.report_interval_s)
            if self._poked.is_set():
                # Gather a burst of changes (one deploy of many instances) into one report;
                # a large cluster, whose reports cost more, reports less often in a burst.
                await asyncio.sleep(max(REPORT_DEBOUNCE_S, REPORT_COST_FACTOR * last_cost))
            self._poked.clear()
            started = time.monotonic()
            try:
                reply = await self.report_once()
            except PeerError as exc:
                failures += 1
                if self.root_reachable or failures == 1:
                    log.warning("root unreachable; instances keep running: %s", exc)
                self.root_reachable = False
                await asyncio.sleep(retry_delay(failures))
                continue
            last_cost = time.monotonic() - started
            if not self.root_reachable:
                log.info("root reachable; state re-synced")
            failures = 0
            self.root_reachable = True
            try:
                await self.apply(reply)
            except Exception:  # a bad reply must not stop reporting
                log.exception("applying the root's reply failed")


__all__ = ["REPORT_DEBOUNCE_S", "RootLink", "retry_delay"]
