"""What the root does: applications, services and instances, clusters, and placement.

The HTTP routes check who is asking and call one method here. Every method runs on the
app's event loop and keeps the store and the in-memory scheduling view consistent
without locks: a method changes both between two awaits, and awaits only for calls to
cluster managers.

Instance lifecycle (Oakestra's, Bartolomeo et al., USENIX ATC'23): the root creates an
instance ``REQUESTED``; when a cluster manager takes it, ``CLUSTER_SCHEDULED`` (and
``NODE_SCHEDULED`` when its reply names the node); later states (``RUNNING``,
``FAILED``, ``STOPPED``) arrive in the cluster's reports. Every change of state appends a
transition with its time. An instance no cluster takes stays ``REQUESTED`` with the
reasons in ``detail``, and the background loop retries it every second. A cluster that
misses reports for ``cluster_timeout_s`` is lost: its instances go back to
``REQUESTED`` and are placed elsewhere; when it comes back, its report's reply tells it
to stop the copies it still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from harmonia.control.config import RootConfig
from harmonia.control.protocol import (
    ClusterRegistration,
    ClusterReport,
    InstanceSpec,
    InstanceStatus,
    NodeReport,
    PlaceReply,
    Registered,
    ReportReply,
)
from harmonia.control.root.auth import (
    Authenticator,
    Principal,
    Role,
    TokenError,
    TokenPair,
    TokenType,
    secrets_equal,
)
from harmonia.control.root.descriptors import (
    ApplicationDraft,
    ServiceDraft,
    StoredSpec,
    application_draft,
    drafts_from_descriptor,
    instance_spec,
    rename_paths,
)
from harmonia.control.root.placement import Refusal, SchedulingView
from harmonia.control.root.schemas import (
    Amounts,
    ApplicationOut,
    ApplicationUpdate,
    ClusterOut,
    InstanceDetail,
    InstanceOut,
    JoinToken,
    NewUser,
    ServiceOut,
    TransitionOut,
    UserOut,
)
from harmonia.control.root.store import (
    ApplicationRow,
    ClusterRow,
    InstanceRow,
    JoinTokenRow,
    ServiceRow,
    Store,
    TransitionRow,
    UserRow,
    new_id,
)
from harmonia.control.root.views import application_out, instance_out, service_out
from harmonia.control.transport import Peer, PeerError, detail_of
from harmonia.model import HarmoniaError, InputError, InstanceState

log = logging.getLogger("harmonia.control.root")

INLINE_PLACEMENT_S = 2.0
"""A request that creates instances places them before it answers, for this long at
most; the background loop places the rest."""
TICK_S = 1.0
"""How often the background loop checks clusters and retries REQUESTED instances."""
MIN_START_GRACE_S = 1.0
"""An instance a cluster took is re-sent (``ReportReply.start``) only when its reports
have lacked it for two report intervals, and never sooner than this."""

ACTIVE_STATES = (
    InstanceState.CLUSTER_SCHEDULED.value,
    InstanceState.NODE_SCHEDULED.value,
    InstanceState.RUNNING.value,
)
NOT_ENDED = (InstanceState.REQUESTED.value, *ACTIVE_STATES)


class ApiError(HarmoniaError):
    """A refusal with its HTTP status; ``detail`` names the field or object at fault."""

    def __init__(self, status: int, detail: str | list[str]) -> None:
        super().__init__(detail if isinstance(detail, str) else "; ".join(detail))
        self.status = status
        self.detail = detail


def _invalid(error: InputError) -> ApiError:
    return ApiError(422, [str(problem) for problem in error.errors])


@dataclass
class ClusterInfo:
    """What the root needs at hand about a cluster to call it and judge its reports."""

    id: str
    name: str
    url: str
    secret: str
    lost: bool
    last_seen: float  # monotonic
    report_interval_s: float = 2.0


class RootController:
    """The root's behaviour over its store, its scheduling view and its cluster peers."""

    def __init__(
        self,
        config: RootConfig,
        store: Store,
        auth: Authenticator,
        client: httpx.AsyncClient,
    ) -> None:
        self.config = config
        self.store = store
        self.auth = auth
        self.client = client
        self.view = SchedulingView(config.policy)
        self.clusters: dict[str, ClusterInfo] = {}
        # Instance id -> the cluster its placement is being sent to (None: deciding).
        self._placing: dict[str, str | None] = {}
        self._load()

    def _load(self) -> None:
        """Clusters and their last reported nodes from the store. Every active cluster
        gets a full timeout from now to report again: the root's downtime is not theirs."""
        now = time.monotonic()
        with self.store.session() as session:
            for row in session.scalars(select(ClusterRow)):
                self.clusters[row.id] = ClusterInfo(
                    row.id, row.name, row.url, row.secret, row.lost, now
                )
                if not row.lost:
                    self.view.set_cluster(row.id, row.name, _reported_nodes(row))

    # -- users and tokens ---------------------------------------------------------------

    async def login(self, username: str, password: str) -> TokenPair:
        with self.store.session() as session:
            user = session.get(UserRow, username)
            password_hash = user.password_hash if user is not None else None
        # argon2 takes tens of milliseconds of CPU: off the event loop.
        if not await asyncio.to_thread(self.auth.check_password, password_hash, password):
            raise ApiError(401, "invalid username or password")
        return self.auth.issue(username)

    def refresh(self, refresh_token: str) -> TokenPair:
        try:
            username = self.auth.verify(refresh_token, TokenType.REFRESH)
        except TokenError as exc:
            raise ApiError(401, f"refresh_token: {exc}") from None
        with self.store.session() as session:
            if session.get(UserRow, username) is None:
                raise ApiError(401, "refresh_token: the user no longer exists")
        return self.auth.issue(username)

    async def create_user(self, body: NewUser) -> UserOut:
        password_hash = await asyncio.to_thread(self.auth.hash_password, body.password)
        roles = sorted({role.value for role in body.roles})
        with self.store.session() as session:
            if session.get(UserRow, body.username) is not None:
                raise ApiError(409, f"username: user {body.username!r} already exists")
            row = UserRow(
                username=body.username,
                password_hash=password_hash,
                roles=roles,
                created_at=time.time(),
            )
            session.add(row)
            return UserOut(username=row.username, roles=roles, created_at=row.created_at)

    def users(self) -> list[UserOut]:
        with self.store.session() as session:
            rows = session.scalars(select(UserRow).order_by(UserRow.username))
            return [
                UserOut(username=r.username, roles=r.roles, created_at=r.created_at) for r in rows
            ]

    # -- applications -------------------------------------------------------------------

    async def deploy(self, principal: Principal, descriptor: Any) -> list[ApplicationOut]:
        """Create every application of an SLA descriptor, its services and instances,
        and place the instances."""
        _need_role(principal, Role.APP_PROVIDER)
        try:
            drafts = drafts_from_descriptor(descriptor)
        except InputError as exc:
            raise _invalid(exc) from None
        created: list[ApplicationOut] = []
        new_instances: list[str] = []
        with self.store.session() as session:
            for index, draft in enumerate(drafts):
                _check_free_name(session, principal.username, draft.name, None, index)
            for draft in drafts:
                app = ApplicationRow(
                    id=new_id(),
                    owner=principal.username,
                    name=draft.name,
                    namespace=draft.namespace,
                    description=draft.description,
                    sla=draft.sla,
                )
                session.add(app)
                session.flush()
                service_ids = []
                for service_draft in draft.services:
                    service = self._new_service(session, app, service_draft)
                    service_ids.append(service.id)
                    new_instances.extend(
                        self._new_instance(session, service).id
                        for _ in range(service_draft.replicas)
                    )
                created.append(application_out(app, service_ids))
        await self._place_now(new_instances)
        return created

    def applications(self, principal: Principal) -> list[ApplicationOut]:
        with self.store.session() as session:
            query = select(ApplicationRow).order_by(ApplicationRow.created_at)
            if not principal.is_admin:
                query = query.where(ApplicationRow.owner == principal.username)
            apps = list(session.scalars(query))
            services = _service_ids(session, [a.id for a in apps])
            return [application_out(a, services.get(a.id, [])) for a in apps]

    def application(self, principal: Principal, app_id: str) -> ApplicationOut:
        with self.store.session() as session:
            app = _owned_application(session, principal, app_id)
            return application_out(app, _service_ids(session, [app.id]).get(app.id, []))

    def update_application(
        self, principal: Principal, app_id: str, update: ApplicationUpdate
    ) -> ApplicationOut:
        with self.store.session() as session:
            app = _owned_application(session, principal, app_id)
            sla = dict(app.sla)
            if update.application_name is not None:
                _check_free_name(session, app.owner, update.application_name, app.id, None)
                sla["application_name"] = update.application_name
            if update.application_namespace is not None:
                sla["application_namespace"] = update.application_namespace
            if update.application_desc is not None:
                sla["application_desc"] = update.application_desc
            services = _services_of(session, app.id)
            # Service keys (and connectivity targets) carry the application's name.
            draft = self._redraft(app.owner, sla, services, None)
            for service, service_draft in zip(services, draft.services, strict=True):
                service.spec = service_draft.stored.model_dump(mode="json")
            app.sla = sla
            app.name, app.namespace = draft.name, draft.namespace
            app.description = draft.description
            return application_out(app, [s.id for s in services])

    async def delete_application(self, principal: Principal, app_id: str) -> None:
        with self.store.session() as session:
            app = _owned_application(session, principal, app_id)
            service_ids = [s.id for s in _services_of(session, app.id)]
        for service_id in service_ids:
            await self._delete_service(service_id)
        with self.store.session() as session:
            session.execute(delete(ApplicationRow).where(ApplicationRow.id == app_id))

    # -- services ---------------------------------------------------------------------------

    async def add_service(
        self, principal: Principal, app_id: str, microservice: dict[str, Any]
    ) -> ServiceOut:
        with self.store.session() as session:
            app = _owned_application(session, principal, app_id)
            services = _services_of(session, app.id)
            draft = self._redraft(app.owner, app.sla, services, microservice)
            service = self._new_service(session, app, draft.services[-1])
            created = [self._new_instance(session, service) for _ in range(service.replicas)]
            out = service_out(service, app, created, self._cluster_names())
        await self._place_now([i.id for i in created])
        return self.service(principal, out.microserviceID)

    def service(self, principal: Principal, service_id: str) -> ServiceOut:
        with self.store.session() as session:
            service, app = _owned_service(session, principal, service_id)
            instances = list(
                session.scalars(select(InstanceRow).where(InstanceRow.service_id == service.id))
            )
            return service_out(service, app, instances, self._cluster_names())

    def services(self, principal: Principal, app_id: str) -> list[ServiceOut]:
        with self.store.session() as session:
            app = _owned_application(session, principal, app_id)
            services = _services_of(session, app.id)
            by_service: dict[str, list[InstanceRow]] = {s.id: [] for s in services}
            query = select(InstanceRow).where(InstanceRow.service_id.in_(list(by_service)))
            for instance in session.scalars(query):
                by_service[instance.service_id].append(instance)
            names = self._cluster_names()
            return [service_out(s, app, by_service[s.id], names) for s in services]

    async def delete_service(self, principal: Principal, service_id: str) -> None:
        with self.store.session() as session:
            _owned_service(session, principal, service_id)
        await self._delete_service(service_id)

    async def add_instance(self, principal: Principal, service_id: str) -> InstanceDetail:
        with self.store.session() as session:
            service, _ = _owned_service(session, principal, service_id)
            service.replicas += 1
            instance_id = self._new_instance(session, service).id
        await self._place_now([instance_id])
        return self.instance(principal, instance_id)

    async def delete_instance(self, principal: Principal, service_id: str, number: int) -> None:
        instance_id = f"{service_id}.{number}"
        with self.store.session() as session:
            service, _ = _owned_service(session, principal, service_id)
            instance = session.get(InstanceRow, instance_id)
            if instance is None or instance.service_id != service.id:
                raise ApiError(404, f"service {service_id} has no instance {number}")
            service.replicas = max(service.replicas - 1, 0)
        await self._remove_instances([instance_id], "deleted by request")

    async def scale(self, principal: Principal, service_id: str, replicas: int) -> ServiceOut:
        """Add or remove instances (highest numbers first) so ``replicas`` are wanted."""
        with self.store.session() as session:
            service, _ = _owned_service(session, principal, service_id)
            instances = sorted(
                session.scalars(select(InstanceRow).where(InstanceRow.service_id == service.id)),
                key=lambda row: row.number,
            )
            added = [
                self._new_instance(session, service).id for _ in range(replicas - len(instances))
            ]
            removed = [i.id for i in instances[replicas:]]
            service.replicas = replicas
        if removed:
            await self._remove_instances(removed, f"scaled to {replicas}")
        await self._place_now(added)
        return self.service(principal, service_id)

    # -- instances --------------------------------------------------------------------------

    def instances(self, principal: Principal, app_id: str | None = None) -> list[InstanceOut]:
        with self.store.session() as session:
            query = (
                select(InstanceRow, ServiceRow, ApplicationRow)
                .join(ServiceRow, InstanceRow.service_id == ServiceRow.id)
                .join(ApplicationRow, ServiceRow.application_id == ApplicationRow.id)
                .order_by(ApplicationRow.created_at, ServiceRow.created_at, InstanceRow.number)
            )
            if app_id is not None:
                _owned_application(session, principal, app_id)
                query = query.where(ApplicationRow.id == app_id)
            elif not principal.is_admin:
                query = query.where(ApplicationRow.owner == principal.username)
            names = self._cluster_names()
            return [instance_out(i, s, a, names) for i, s, a in session.execute(query)]

    def instance(self, principal: Principal, instance_id: str) -> InstanceDetail:
        with self.store.session() as session:
            instance, service, app = _owned_instance(session, principal, instance_id)
            transitions = session.scalars(
                select(TransitionRow)
                .where(TransitionRow.instance_id == instance.id)
                .order_by(TransitionRow.id)
            )
            out = instance_out(instance, service, app, self._cluster_names())
            return InstanceDetail(
                **out.model_dump(),
                transitions=[
                    TransitionOut(state=InstanceState(t.state), at=t.at, detail=t.detail)
                    for t in transitions
                ],
            )

    async def logs(self, principal: Principal, instance_id: str, stream: str, tail: int) -> str:
        """The instance's log, as its cluster manager (from its node) returns it."""
        with self.store.session() as session:
            instance, _, _ = _owned_instance(session, principal, instance_id)
            cluster_id = instance.cluster_id
        cluster = self.clusters.get(cluster_id) if cluster_id else None
        if cluster is None:
            raise ApiError(409, f"instance {instance_id} runs on no cluster yet")
        peer = Peer(self.client, cluster.url, cluster.secret, retries=1)
        try:
            response = await peer.call(
                "GET",
                f"/api/instances/{instance_id}/logs",
                params={"stream": stream, "tail": tail},
                ok=(200,),
            )
        except PeerError as exc:
            if exc.status == 404:
                raise ApiError(404, f"no {stream} log of {instance_id} on {cluster.name}") from None
            raise ApiError(502, f"cluster {cluster.name}: {exc}") from None
        assert isinstance(response, httpx.Response)
        return response.text

    # -- clusters -----------------------------------------------------------------------

    def create_join_token(self, principal: Principal, ttl_s: int) -> JoinToken:
        token = secrets.token_urlsafe(32)
        expires_at = time.time() + ttl_s
        with self.store.session() as session:
            session.add(
                JoinTokenRow(
                    token_hash=_token_hash(token),
                    created_by=principal.username,
                    created_at=time.time(),
                    expires_at=expires_at,
                )
            )
        return JoinToken(token=token, expires_at=expires_at)

    def register(self, registration: ClusterRegistration) -> Registered:
        """A cluster manager joins with a token (or re-joins: same name, same id back,
        a new secret). A token registers one cluster: once used, it is valid only for
        that cluster's re-registration."""
        now = time.time()
        secret = secrets.token_urlsafe(32)
        with self.store.session() as session:
            token = session.get(JoinTokenRow, _token_hash(registration.join_token))
            if token is None or token.expires_at < now:
                raise ApiError(401, "join_token: invalid or expired")
            row = session.scalars(
                select(ClusterRow).where(ClusterRow.name == registration.name)
            ).first()
            if token.used and (row is None or token.used_by != row.id):
                raise ApiError(401, "join_token: already used by another cluster")
            location = list(registration.location) if registration.location else None
            if row is None:
                row = ClusterRow(
                    id=new_id(),
                    name=registration.name,
                    url=registration.url,
                    secret=secret,
                    location=location,
                    registered_at=now,
                    lost=False,
                )
                session.add(row)
                log.info("cluster %s registered as %s", row.name, row.id)
            else:
                row.url, row.secret, row.location = registration.url, secret, location
                log.info("cluster %s (%s) registered again", row.name, row.id)
            token.used, token.used_by = True, row.id
            info = self.clusters.get(row.id)
            if info is None:
                self.clusters[row.id] = ClusterInfo(
                    row.id, row.name, row.url, secret, row.lost, time.monotonic()
                )
            else:
                info.url, info.secret, info.last_seen = row.url, secret, time.monotonic()
            return Registered(id=row.id, secret=secret)

    def authenticate_cluster(self, cluster_id: str, secret: str | None) -> ClusterInfo:
        cluster = self.clusters.get(cluster_id)
        if cluster is None or secret is None or not secrets_equal(secret, cluster.secret):
            raise ApiError(401, "unknown cluster or wrong cluster secret")
        return cluster

    def report(self, cluster: ClusterInfo, report: ClusterReport) -> ReportReply:
        """Take a cluster's nodes and instance states; answer what it should stop (what
        the root does not place there) and start (what it placed there, unreported)."""
        if report.name != cluster.name:
            raise ApiError(
                422, f"name: report names cluster {report.name!r}, this is {cluster.name!r}"
            )
        now, monotonic = time.time(), time.monotonic()
        if not cluster.lost:
            # Smoothed, so one late report does not double the grace of the next.
            interval = monotonic - cluster.last_seen
            cluster.report_interval_s = 0.7 * cluster.report_interval_s + 0.3 * interval
        cluster.last_seen = monotonic
        reply = ReportReply()
        reported = {status.instance_id: status for status in report.instances}
        with self.store.session() as session:
            row = session.get(ClusterRow, cluster.id)
            assert row is not None  # clusters are never deleted
            row.last_report_at = now
            row.last_report = {"nodes": [n.model_dump(mode="json") for n in report.nodes]}
            if row.lost or cluster.lost:
                log.info("cluster %s is back", cluster.name)
                row.lost = cluster.lost = False
            known = _instances_by_id(session, list(reported))
            for instance_id, status in reported.items():
                instance = known.get(instance_id)
                if instance is not None and instance.cluster_id == cluster.id:
                    self._apply_status(session, instance, status, now)
                elif self._placing.get(instance_id) == cluster.id:
                    continue  # the placement's reply is on its way
                elif (
                    instance is not None
                    and instance.state == InstanceState.REQUESTED
                    and instance_id not in self._placing
                    and not status.state.ended
                ):
                    self._adopt(session, instance, cluster, status, now)
                else:
                    reply.stop.append(instance_id)
            reply.start = self._missing_from(session, cluster, set(reported), now)
        self.view.set_cluster(cluster.id, cluster.name, report.nodes)
        self.view.settle(cluster.id, reported)
        return reply

    def cluster_list(self) -> list[ClusterOut]:
        with self.store.session() as session:
            counts = _assigned_counts(session)
            rows = session.scalars(select(ClusterRow).order_by(ClusterRow.name))
            return [_cluster_out(row, counts.get(row.id, 0)) for row in rows]

    def cluster(self, cluster_id: str) -> ClusterOut:
        with self.store.session() as session:
            row = session.get(ClusterRow, cluster_id)
            if row is None:
                raise ApiError(404, f"no cluster {cluster_id!r}")
            return _cluster_out(row, _assigned_counts(session).get(row.id, 0))

    # -- background -------------------------------------------------------------------

    async def run(self, tick_s: float = TICK_S) -> None:
        """Check clusters and retry unplaced instances until cancelled."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad tick must not end the loop; the next one retries
                log.exception("background tick failed")
            await asyncio.sleep(tick_s)

    async def tick(self) -> None:
        """One round: lose silent clusters, drop stale reservations, place what waits."""
        monotonic = time.monotonic()
        for cluster in list(self.clusters.values()):
            if not cluster.lost and monotonic - cluster.last_seen > self.config.cluster_timeout_s:
                self._lose(cluster)
        self.view.expire()
        with self.store.session() as session:
            waiting = list(
                session.scalars(
                    select(InstanceRow.id)
                    .where(InstanceRow.state == InstanceState.REQUESTED.value)
                    .where(InstanceRow.cluster_id.is_(None))
                    .order_by(InstanceRow.updated_at)
                )
            )
        for instance_id in waiting:
            await self.place(instance_id)

    # -- placement ----------------------------------------------------------------------

    async def place(self, instance_id: str) -> None:
        """Place one REQUESTED instance: the scheduling core picks a cluster, the cluster
        manager takes it or refuses; refusals and unreachable clusters make the next best
        cluster be asked, until every cluster was tried."""
        if instance_id in self._placing:
            return
        self._placing[instance_id] = None
        try:
            await self._place(instance_id)
        finally:
            self._placing.pop(instance_id, None)

    async def _place(self, instance_id: str) -> None:
        spec = self._spec_of(instance_id, only_requested=True)
        if spec is None:
            return
        excluded: set[str] = set()
        refusals: list[str] = []
        while True:
            choice = self.view.choose(spec.request, excluded)
            if isinstance(choice, Refusal):
                refusals.extend(choice.reasons)
                break
            cluster = self.clusters[choice.cluster_id]
            self._placing[instance_id] = cluster.id
            why = await self._send(cluster, spec)
            if why is None:
                return
            self.view.cancel(instance_id)
            self._placing[instance_id] = None
            excluded.add(cluster.id)
            refusals.append(f"cluster {cluster.name}: {why}")
        self._note_unplaced(instance_id, "; ".join(refusals))

    async def _send(self, cluster: ClusterInfo, spec: InstanceSpec) -> str | None:
        """Ask ``cluster`` to take ``spec``; None when it did, else why not."""
        peer = Peer(self.client, cluster.url, cluster.secret, retries=1)
        try:
            response = await peer.call("POST", "/api/instances", body=spec, ok=(200, 201, 202, 409))
        except PeerError as exc:
            return str(exc)
        assert isinstance(response, httpx.Response)
        try:
            reply = PlaceReply.model_validate_json(response.content)
        except ValueError:
            return f"{response.status_code} {detail_of(response)}"
        if not reply.placed or response.status_code == 409:
            return "; ".join(reply.reasons) or "refused"
        if cluster.lost:
            # Lost while it was being asked: place the instance elsewhere; the copy there
            # is stopped when the cluster reports again (the root no longer places it there).
            return "lost while it was being asked"
        self.view.confirm(spec.instance_id, reply.node)
        if not self._record_placed(spec.instance_id, cluster, reply.node):
            # Deleted while the cluster was being asked: undo it there.
            self.view.cancel(spec.instance_id)
            await self._stop_on(cluster, spec.instance_id)
        return None

    async def _place_now(self, instance_ids: Sequence[str]) -> None:
        deadline = time.monotonic() + INLINE_PLACEMENT_S
        for instance_id in instance_ids:
            if time.monotonic() > deadline:
                break  # the background loop places the rest
            await self.place(instance_id)

    def _record_placed(self, instance_id: str, cluster: ClusterInfo, node: str | None) -> bool:
        now = time.time()
        with self.store.session() as session:
            instance = session.get(InstanceRow, instance_id)
            if instance is None:
                return False
            instance.cluster_id, instance.placed_at, instance.detail = cluster.id, now, ""
            _set_state(session, instance, InstanceState.CLUSTER_SCHEDULED, now, cluster.name)
            if node is not None and instance.state == InstanceState.CLUSTER_SCHEDULED:
                instance.node = node
                _set_state(session, instance, InstanceState.NODE_SCHEDULED, now, node)
            return True

    def _note_unplaced(self, instance_id: str, why: str) -> None:
        with self.store.session() as session:
            instance = session.get(InstanceRow, instance_id)
            if instance is not None and instance.detail != why:
                instance.detail = why
                instance.updated_at = time.time()

    def _spec_of(self, instance_id: str, *, only_requested: bool = False) -> InstanceSpec | None:
        with self.store.session() as session:
            instance = session.get(InstanceRow, instance_id)
            if instance is None or (only_requested and instance.state != InstanceState.REQUESTED):
                return None
            service = session.get(ServiceRow, instance.service_id)
            assert service is not None
            app = session.get(ApplicationRow, service.application_id)
            assert app is not None
            return _spec(instance, service, app)

    async def _remove_instances(self, instance_ids: Iterable[str], why: str) -> None:
        """Mark STOPPED, remove, and tell their clusters to stop them. The store goes
        first, so a report racing with this finds them unknown and is told to stop too."""
        now = time.time()
        on_clusters: list[tuple[ClusterInfo, str]] = []
        with self.store.session() as session:
            for instance_id in instance_ids:
                self.view.cancel(instance_id)
                instance = session.get(InstanceRow, instance_id)
                if instance is None:
                    continue
                cluster = self.clusters.get(instance.cluster_id or "")
                if cluster is not None and not cluster.lost:
                    on_clusters.append((cluster, instance_id))
                _set_state(session, instance, InstanceState.STOPPED, now, why)
                session.delete(instance)
        await asyncio.gather(*(self._stop_on(c, i) for c, i in on_clusters))

    async def _stop_on(self, cluster: ClusterInfo, instance_id: str) -> None:
        peer = Peer(self.client, cluster.url, cluster.secret, retries=1)
        try:
            await peer.call("DELETE", f"/api/instances/{instance_id}", ok=(200, 202, 204, 404))
        except PeerError as exc:
            # Its next report lists the instance, and the reply tells it to stop.
            log.warning("could not stop %s on %s: %s", instance_id, cluster.name, exc)

    async def _delete_service(self, service_id: str) -> None:
        with self.store.session() as session:
            ids = list(
                session.scalars(select(InstanceRow.id).where(InstanceRow.service_id == service_id))
            )
        await self._remove_instances(ids, "service deleted")
        with self.store.session() as session:
            session.execute(delete(TransitionRow).where(TransitionRow.service_id == service_id))
            session.execute(delete(InstanceRow).where(InstanceRow.service_id == service_id))
            session.execute(delete(ServiceRow).where(ServiceRow.id == service_id))

    # -- cluster state ------------------------------------------------------------------

    def _apply_status(
        self, session: Session, instance: InstanceRow, status: InstanceStatus, now: float
    ) -> None:
        state = status.state
        if state is InstanceState.REQUESTED:
            # The cluster holds it and looks for a node: for the root it stays with that
            # cluster (REQUESTED means "no cluster yet" here, and would be re-placed).
            state = InstanceState.CLUSTER_SCHEDULED
        changed = False
        for name, value in (
            ("node", status.node),
            ("pid", status.pid),
            ("restarts", status.restarts),
            ("started_at", status.started_at),
        ):
            if getattr(instance, name) != value:
                setattr(instance, name, value)
                changed = True
        if instance.state != state:
            _set_state(session, instance, state, status.at, status.detail)
            changed = True
        if instance.detail != status.detail:
            instance.detail = status.detail
            changed = True
        if changed:
            instance.updated_at = now

    def _adopt(
        self,
        session: Session,
        instance: InstanceRow,
        cluster: ClusterInfo,
        status: InstanceStatus,
        now: float,
    ) -> None:
        """A waiting instance a cluster still runs (it came back before the instance was
        placed elsewhere, or the root restarted mid-placement): keep that copy rather
        than stop it and start another."""
        instance.cluster_id, instance.placed_at = cluster.id, now
        _set_state(
            session, instance, InstanceState.CLUSTER_SCHEDULED, now, f"{cluster.name} runs it"
        )
        self._apply_status(session, instance, status, now)

    def _missing_from(
        self, session: Session, cluster: ClusterInfo, reported: set[str], now: float
    ) -> list[InstanceSpec]:
        grace = max(2 * cluster.report_interval_s, MIN_START_GRACE_S)
        missing = session.scalars(
            select(InstanceRow)
            .where(InstanceRow.cluster_id == cluster.id)
            .where(InstanceRow.state.in_(ACTIVE_STATES))
            .where(InstanceRow.placed_at < now - grace)
        )
        specs = []
        for instance in missing:
            if instance.id in reported or instance.id in self._placing:
                continue
            service = session.get(ServiceRow, instance.service_id)
            app = session.get(ApplicationRow, service.application_id) if service else None
            if service is not None and app is not None:
                specs.append(_spec(instance, service, app))
        return specs

    def _lose(self, cluster: ClusterInfo) -> None:
        now = time.time()
        log.warning(
            "cluster %s lost: no report for %.1f s", cluster.name, self.config.cluster_timeout_s
        )
        cluster.lost = True
        with self.store.session() as session:
            row = session.get(ClusterRow, cluster.id)
            if row is not None:
                row.lost = True
            orphans = session.scalars(
                select(InstanceRow)
                .where(InstanceRow.cluster_id == cluster.id)
                .where(InstanceRow.state.in_(ACTIVE_STATES))
            )
            for instance in orphans:
                instance.cluster_id = instance.node = instance.pid = None
                instance.placed_at = instance.started_at = None
                _set_state(
                    session, instance, InstanceState.REQUESTED, now, f"cluster {cluster.name} lost"
                )
        self.view.remove_cluster(cluster.id)

    # -- helpers --------------------------------------------------------------------------

    def _cluster_names(self) -> dict[str, str]:
        return {c.id: c.name for c in self.clusters.values()}

    def _redraft(
        self,
        owner: str,
        sla: dict[str, Any],
        services: list[ServiceRow],
        new: dict[str, Any] | None,
    ) -> ApplicationDraft:
        """The application re-validated with its services (and ``new``), paths in the
        terms of the request that changes it."""
        microservices = [s.microservice for s in services]
        renames = {f"applications[0].microservices[{len(services)}]": "microservice"}
        renames |= {
            f"applications[0].microservices[{k}]": f"services[{k}]" for k in range(len(services))
        }
        renames["applications[0]"] = "application"
        try:
            return application_draft(
                sla, [*microservices, *([new] if new is not None else [])], owner=owner
            )
        except InputError as exc:
            raise _invalid(rename_paths(exc, renames)) from None

    def _new_service(
        self, session: Session, app: ApplicationRow, draft: ServiceDraft
    ) -> ServiceRow:
        service = ServiceRow(
            id=new_id(),
            application_id=app.id,
            name=draft.name,
            microservice=draft.microservice,
            spec=draft.stored.model_dump(mode="json"),
            replicas=draft.replicas,
            next_number=0,
            created_at=time.time(),
        )
        session.add(service)
        session.flush()
        return service

    def _new_instance(self, session: Session, service: ServiceRow) -> InstanceRow:
        number = service.next_number
        service.next_number = number + 1
        now = time.time()
        instance = InstanceRow(
            id=f"{service.id}.{number}",
            service_id=service.id,
            number=number,
            state=InstanceState.REQUESTED.value,
            restarts=0,
            detail="",
            updated_at=now,
        )
        session.add(instance)
        session.add(
            TransitionRow(
                instance_id=instance.id,
                service_id=service.id,
                state=InstanceState.REQUESTED.value,
                at=now,
                detail="",
            )
        )
        return instance

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.store.close()


# -- module helpers -------------------------------------------------------------------------


def _need_role(principal: Principal, *roles: Role) -> None:
    if not principal.has(*roles):
        wanted = " or ".join(r.value for r in (Role.ADMIN, *roles))
        raise ApiError(403, f"needs the role {wanted}")


def _check_free_name(
    session: Session, owner: str, name: str, own_id: str | None, index: int | None
) -> None:
    clash = session.scalars(
        select(ApplicationRow).where(ApplicationRow.owner == owner, ApplicationRow.name == name)
    ).first()
    if clash is not None and clash.id != own_id:
        where = (
            f"applications[{index}].application_name" if index is not None else "application_name"
        )
        raise ApiError(409, f"{where}: application {name!r} already exists (id {clash.id})")


def _owned_application(session: Session, principal: Principal, app_id: str) -> ApplicationRow:
    app = session.get(ApplicationRow, app_id)
    if app is None:
        raise ApiError(404, f"no application {app_id!r}")
    if not principal.may_change(app.owner):
        raise ApiError(403, f"application {app_id} belongs to another user")
    return app


def _owned_service(
    session: Session, principal: Principal, service_id: str
) -> tuple[ServiceRow, ApplicationRow]:
    service = session.get(ServiceRow, service_id)
    if service is None:
        raise ApiError(404, f"no service {service_id!r}")
    app = session.get(ApplicationRow, service.application_id)
    assert app is not None
    if not principal.may_change(app.owner):
        raise ApiError(403, f"service {service_id} belongs to another user")
    return service, app


def _owned_instance(
    session: Session, principal: Principal, instance_id: str
) -> tuple[InstanceRow, ServiceRow, ApplicationRow]:
    instance = session.get(InstanceRow, instance_id)
    if instance is None:
        raise ApiError(404, f"no instance {instance_id!r}")
    service = session.get(ServiceRow, instance.service_id)
    assert service is not None
    app = session.get(ApplicationRow, service.application_id)
    assert app is not None
    if not principal.may_change(app.owner):
        raise ApiError(403, f"instance {instance_id} belongs to another user")
    return instance, service, app


def _services_of(session: Session, app_id: str) -> list[ServiceRow]:
    query = (
        select(ServiceRow)
        .where(ServiceRow.application_id == app_id)
        .order_by(ServiceRow.created_at, ServiceRow.id)
    )
    return list(session.scalars(query))


def _service_ids(session: Session, app_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    query = (
        select(ServiceRow.application_id, ServiceRow.id)
        .where(ServiceRow.application_id.in_(app_ids))
        .order_by(ServiceRow.created_at, ServiceRow.id)
    )
    for app_id, service_id in session.execute(query):
        found.setdefault(app_id, []).append(service_id)
    return found


def _instances_by_id(session: Session, ids: list[str]) -> dict[str, InstanceRow]:
    found: dict[str, InstanceRow] = {}
    chunk = 500  # well under every database's limit of bound parameters
    for start in range(0, len(ids), chunk):
        query = select(InstanceRow).where(InstanceRow.id.in_(ids[start : start + chunk]))
        found.update((row.id, row) for row in session.scalars(query))
    return found


def _assigned_counts(session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    query = select(InstanceRow.cluster_id).where(InstanceRow.cluster_id.is_not(None))
    for cluster_id in session.scalars(query):
        if cluster_id is not None:
            counts[cluster_id] = counts.get(cluster_id, 0) + 1
    return counts


def _set_state(
    session: Session, instance: InstanceRow, state: InstanceState, at: float, detail: str
) -> None:
    """Change ``instance``'s state and append the transition (nothing when unchanged)."""
    if instance.state == state.value:
        return
    instance.state = state.value
    instance.updated_at = time.time()
    session.add(
        TransitionRow(
            instance_id=instance.id,
            service_id=instance.service_id,
            state=state.value,
            at=at,
            detail=detail,
        )
    )


def _spec(instance: InstanceRow, service: ServiceRow, app: ApplicationRow) -> InstanceSpec:
    return instance_spec(
        StoredSpec.model_validate(service.spec),
        instance_id=instance.id,
        service_id=service.id,
        application_id=app.id,
        service_key=f"{app.name}.{service.name}",
        number=instance.number,
    )


def _reported_nodes(row: ClusterRow) -> list[NodeReport]:
    nodes = (row.last_report or {}).get("nodes", [])
    try:
        return [NodeReport.model_validate(node) for node in nodes]
    except ValueError:
        log.warning("cluster %s: stored report unreadable; waiting for a new one", row.name)
        return []


def _cluster_out(row: ClusterRow, instances: int) -> ClusterOut:
    nodes = _reported_nodes(row)
    capacity = [0, 0]
    free = [0, 0]
    for report in nodes:
        capacity[0] += report.node.capacity.cpu_m
        capacity[1] += report.node.capacity.memory_mib
        if report.healthy:
            free[0] += report.free.cpu_m
            free[1] += report.free.memory_mib
    age = time.time() - row.last_report_at if row.last_report_at is not None else None
    return ClusterOut(
        id=row.id,
        name=row.name,
        url=row.url,
        status="lost" if row.lost else "active",
        last_report_age_s=round(age, 3) if age is not None else None,
        nodes=len(nodes),
        healthy_nodes=sum(1 for n in nodes if n.healthy),
        capacity=Amounts(cpu_m=capacity[0], memory_mib=capacity[1]),
        free=Amounts(cpu_m=free[0], memory_mib=free[1]),
        instances=instances,
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


__all__ = ["ApiError", "ClusterInfo", "RootController"]
