"""Edge services: applications with latency and geo bounds, deployed over time, every
placement checked independently against the truth.

The scenario's ``services`` section (:class:`~harmonia.sim.scenario.ServicesConfig`)
describes the workload; :class:`EdgeWorkload` belongs to a
:class:`~harmonia.sim.simulator.Simulation`, which hands it engine events (arrivals and
removals of applications) and node failures and recoveries.

Users. One area per cluster (:meth:`Infrastructure.areas
<harmonia.sim.infra.Infrastructure.areas>`), registered on the run's state as
``area-<cluster>`` with its user points; an application serves the users of one area,
drawn uniformly. Its *centre* (for ``geo_km``) is the mean of the area's points and its
*location* (for ``location_ms``) one of them, drawn as well.

Instances. Every template gives ``replicas`` instances of the service
``<app>.<template>`` (one shared ``PlacementRequest``, QoS ``LC``). They are placed in
template order at arrival; one the policy cannot place now waits and is retried, in
arrival order, whenever capacity or references change (an application leaves, a node
fails or recovers, another instance is placed); one it refuses as ``UNRESOLVABLE`` (a
bound no plugin of the policy enforces) is counted and never retried. When an
application leaves, its running instances are released and its waiting ones dropped.

The independent check (:class:`BoundCheck`). A bound is never judged with the policy's
own plugins: ``near`` bounds read the *true* RTT matrix (the one the infrastructure
generated or loaded, even when the policy sees Vivaldi estimates), from the nearest
other running instance of the named service; area, location and geo bounds recompute
great-circle distances, with the same RTT model the constraint defines (fibre RTT of the
distance plus the 2 ms access leg, :mod:`harmonia.sched.plugins.latency`; for an area the
farthest of its points). A margin of 1e-6 ms (km) absorbs floating-point rounding at
the boundary only. Checks run at every placement and, for every running instance, after
every node failure has been handled (a dependent whose reference moved away breaks its
bound without being placed again).

Failures. For ``latency-reliable`` the failover planner is told first
(``planner.node_failed``): it marks the node down, moves protected instances into their
placeholders (recovered at once, time 0) and releases the rest (requeued here, as are
instances it does not track); ``migrate`` moves are followed, ``stranded`` ones counted.
For every other policy the node is marked down, its instances released and requeued.
An affected instance *recovers* when it runs again while its application lives; the
time to recover is from the failure to that placement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harmonia.model import (
    FieldError,
    GeoConstraint,
    GeoPoint,
    HarmoniaError,
    InputError,
    LatencyConstraint,
    PlacementRequest,
    QoSClass,
    haversine_km,
)
from harmonia.model.request import DELAY_LABEL_PREFIX
from harmonia.model.topology import distance_rtt_ms
from harmonia.sched import ClusterState, Code, Decision, DelegatingScheduler, Scheduler
from harmonia.sched.failover import FailoverPlanner, Move
from harmonia.sched.plugins.failover import failover_planner, schedule_instance
from harmonia.sched.plugins.latency import DEFAULT_ACCESS_MS
from harmonia.sched.rtt import MatrixRtt, estimation_error, fit_vivaldi, sample_pairs
from harmonia.sched.state import Area
from harmonia.sim.engine import Engine
from harmonia.sim.infra import Infrastructure
from harmonia.sim.metrics import Samples
from harmonia.sim.recording import Recorder
from harmonia.sim.scenario import ServicesConfig, ServiceTemplate

EPSILON = 1e-6  # ms or km of floating-point slack at a bound, never more
FreedFn = Callable[[int, float], None]
AnyScheduler = Scheduler | DelegatingScheduler


@dataclass(eq=False)
class EdgeApp:
    name: str
    area: int  # index of the users' area (= cluster index)
    point: int  # the user point of ``location_ms`` bounds (global point index)
    alive: bool = True
    instances: list[EdgeInstance] = field(default_factory=list)


@dataclass(eq=False)
class EdgeInstance:
    key: str  # "<app>.<template>.<replica>", the planner's instance key
    app: EdgeApp
    template: ServiceTemplate
    request: PlacementRequest  # as the policy sees it (bounds dropped for some policies)
    node: int = -1
    placed: bool = False  # placed at least once
    refused: bool = False  # refused as UNRESOLVABLE
    failed_at: float | None = None  # set while displaced by a node failure

    @property
    def service(self) -> str:
        return f"{self.app.name}.{self.template.name}"


class BoundCheck:
    """Judges an instance's bounds on a node from the truth (see the module docstring)."""

    def __init__(self, infra: Infrastructure, users_per_area: int, radius_km: float) -> None:
        self.areas = infra.areas(users_per_area, radius_km)
        self.lat = infra.state.lat
        self.long = infra.state.long
        self.truth = infra.state.rtt_ms  # the true matrix, when the infrastructure has one
        k = self.areas.count
        self.centre_lat = np.array([self.areas.lat[self.areas.area == a].mean() for a in range(k)])
        self.centre_long = np.array(
            [self.areas.long[self.areas.area == a].mean() for a in range(k)]
        )

    def points(self, area: int) -> np.ndarray[Any, np.dtype[np.intp]]:
        return np.flatnonzero(self.areas.area == area)

    def user_rtt_ms(self, points: np.ndarray[Any, np.dtype[np.intp]], node: int) -> float:
        """The latency plugin's estimate from the farthest of ``points`` to ``node``."""
        km = haversine_km(
            self.areas.lat[points], self.areas.long[points], self.lat[node], self.long[node]
        )
        return float(np.max(distance_rtt_ms(km))) + DEFAULT_ACCESS_MS

    def broken(self, inst: EdgeInstance, node: int, hosts: dict[str, set[int]]) -> list[str]:
        """The bounds of ``inst``'s template that do not hold on ``node``; ``hosts`` maps a
        service to the nodes of its running instances."""
        t, app = inst.template, inst.app
        out: list[str] = []
        if t.area_ms is not None:
            rtt = self.user_rtt_ms(self.points(app.area), node)
            if not rtt <= t.area_ms + EPSILON:
                out.append(f"area {rtt:.2f} ms > {t.area_ms} ms")
        if t.location_ms is not None:
            rtt = self.user_rtt_ms(np.array([app.point], dtype=np.intp), node)
            if not rtt <= t.location_ms + EPSILON:
                out.append(f"location {rtt:.2f} ms > {t.location_ms} ms")
        if t.geo_km is not None:
            km = float(
                haversine_km(
                    self.centre_lat[app.area],
                    self.centre_long[app.area],
                    self.lat[node],
                    self.long[node],
                )
            )
            if not km <= t.geo_km + EPSILON:
                out.append(f"geo {km:.1f} km > {t.geo_km} km")
        for ref, ms in t.near.items():
            nodes = sorted(hosts.get(f"{app.name}.{ref}", ()))
            if not nodes:
                out.append(f"near {ref}: no running instance")
                continue
            assert self.truth is not None  # EdgeWorkload refuses near bounds without one
            rtt = float(self.truth[nodes, node].min())
            if not rtt <= ms + EPSILON:
                out.append(f"near {ref} {rtt:.2f} ms > {ms} ms")
        return out


class EdgeWorkload:
    """The edge services of one run: places, releases, checks and counts them."""

    def __init__(
        self,
        infra: Infrastructure,
        state: ClusterState,
        scheduler: AnyScheduler,
        config: ServicesConfig,
        *,
        policy: str,
        rng: np.random.Generator,
        recorder: Recorder,
        freed: FreedFn,
    ) -> None:
        self.state = state
        self.scheduler = scheduler
        self.config = config
        self.rng = rng
        self.recorder = recorder
        self.freed = freed
        self.keep_bounds = policy not in config.drop_bounds_for
        self.check = BoundCheck(infra, config.users_per_area, config.area_radius_km)
        if self.check.truth is None and any(t.near for t in config.templates):
            raise InputError(
                [
                    FieldError(
                        "services.templates",
                        "near bounds are checked against the true RTT matrix, which "
                        f"exists up to 2,000 nodes only (this run has {len(state)})",
                    )
                ]
            )
        self.area_names = [f"area-{name}" for name in state.cluster_names]
        areas = self.check.areas
        for a, name in enumerate(self.area_names):
            points = tuple(
                GeoPoint(lat=float(areas.lat[p]), long=float(areas.long[p]))
                for p in self.check.points(a).tolist()
            )
            state.add_area(Area(name, points))
        self.planner: FailoverPlanner | None = None
        if isinstance(scheduler, Scheduler):
            try:
                self.planner = failover_planner(scheduler)
            except HarmoniaError:
                self.planner = None  # the policy keeps no failover reservations
        self.apps: list[EdgeApp] = []
        self.by_key: dict[str, EdgeInstance] = {}
        self.on_node: dict[int, set[EdgeInstance]] = {}
        self.hosts: dict[str, set[int]] = {}  # service -> nodes of its running instances
        self.pending: list[EdgeInstance] = []
        self.engine: Engine | None = None
        self.kinds = (0, 0, 0)  # arrive kind, remove kind, priority
        # Counters and samples (see metrics()).
        self.requested = 0
        self.bounded_requested = 0
        self.placements = 0
        self.violations_at_placement = 0
        self.violations_after_failures = 0
        self.bounds_unmet = 0  # placements breaking bounds the policy was not given
        self.examples: list[str] = []
        self.user_rtt = Samples()
        self.overhead_share = Samples()
        self.affected = 0
        self.recovered = 0
        self.recovered_within = 0
        self.recovery_s = Samples()
        self.moves = {"failover": 0, "requeue": 0, "migrate": 0, "stranded": 0}
        self.failures_hit = 0
        self.failover_within = 0  # failover moves whose target meets every bound

    # -- engine events ----------------------------------------------------------------------

    def start(self, engine: Engine, start: float, arrive: int, remove: int, priority: int) -> None:
        """Register the arrival and removal handlers and schedule the first arrival."""
        self.engine = engine
        self.kinds = (arrive, remove, priority)
        engine.register(arrive, self._on_arrive)
        engine.register(remove, self._on_remove)
        engine.schedule(start, priority, arrive, 0)

    def _on_arrive(self, now: float, index: int) -> None:
        assert self.engine is not None
        arrive, remove, priority = self.kinds
        config = self.config
        area = int(self.rng.integers(self.check.areas.count))
        points = self.check.points(area)
        point = int(points[int(self.rng.integers(points.size))])
        app = EdgeApp(f"app{index:04d}", area, point)
        self.apps.append(app)
        for template in config.templates:
            request = self._request(app, template)
            for r in range(template.replicas):
                inst = EdgeInstance(f"{app.name}.{template.name}.{r}", app, template, request)
                app.instances.append(inst)
                self.by_key[inst.key] = inst
                self.requested += 1
                self.bounded_requested += template.bounded
                self.pending.append(inst)
        if config.lifetime_s is not None:
            life = float(self.rng.exponential(config.lifetime_s))
            self.engine.schedule(now + life, priority, remove, app)
        if index + 1 < config.apps:
            gap = float(self.rng.exponential(config.interarrival_s))
            self.engine.schedule(now + gap, priority, arrive, index + 1)
        self.retry(now)
        if self.planner is not None:
            self.overhead_share.add(self.planner.overhead()["share_of_allocatable"]["cpu_m"])

    def _on_remove(self, now: float, app: EdgeApp) -> None:
        app.alive = False
        freed: list[int] = []
        for inst in app.instances:
            if inst.node >= 0:
                node = inst.node
                self._release(inst)
                if self.planner is not None:
                    self.planner.released(inst.key)
                freed.append(node)
            inst.failed_at = None  # gone with its application: no longer waiting to recover
            self.by_key.pop(inst.key, None)
        self.pending = [inst for inst in self.pending if inst.app.alive]
        for node in freed:
            self.freed(node, now)
        self.retry(now)

    # -- placing -------------------------------------------------------------------------

    def _request(self, app: EdgeApp, t: ServiceTemplate) -> PlacementRequest:
        labels: dict[str, str] = {}
        constraints: list[LatencyConstraint | GeoConstraint] = []
        if self.keep_bounds:
            areas, check = self.check.areas, self.check
            for ref, ms in t.near.items():
                labels[f"{DELAY_LABEL_PREFIX}{app.name}.{ref}"] = repr(float(ms))
            if t.area_ms is not None:
                constraints.append(
                    LatencyConstraint(threshold_ms=t.area_ms, area=self.area_names[app.area])
                )
            if t.location_ms is not None:
                point = GeoPoint(lat=float(areas.lat[app.point]), long=float(areas.long[app.point]))
                constraints.append(LatencyConstraint(threshold_ms=t.location_ms, location=point))
            if t.geo_km is not None:
                centre = GeoPoint(
                    lat=float(check.centre_lat[app.area]), long=float(check.centre_long[app.area])
                )
                constraints.append(GeoConstraint(location=centre, threshold_km=t.geo_km))
        return PlacementRequest(
            id=f"{app.name}.{t.name}",
            service=f"{app.name}.{t.name}",
            application=app.name,
            qos_class=QoSClass.LC,
            cpu_m=t.cpu_m,
            memory_mib=t.memory_mib,
            labels=labels,
            constraints=tuple(constraints),
        )

    def retry(self, now: float) -> None:
        """Try every waiting instance, in arrival order, until a pass places none.

        A request refused in a pass is not asked again in that pass (its replicas would
        get the same answer); a pass that placed something may have made a reference
        available, so it is followed by another.
        """
        progress = True
        while progress and self.pending:
            progress = False
            refused: set[int] = set()
            waiting: list[EdgeInstance] = []
            for inst in self.pending:
                if not inst.app.alive or inst.refused:
                    continue
                if id(inst.request) in refused:
                    waiting.append(inst)
                    continue
                decision = self._decide(inst)
                if decision.node is not None:
                    self._placed(inst, self.state.index[decision.node], now)
                    progress = True
                elif decision.code is Code.UNRESOLVABLE:
                    inst.refused = True
                else:
                    refused.add(id(inst.request))
                    waiting.append(inst)
            self.pending = waiting

    def _decide(self, inst: EdgeInstance) -> Decision:
        started = time.perf_counter()
        if self.planner is not None:
            assert isinstance(self.scheduler, Scheduler)
            decision = schedule_instance(self.scheduler, inst.request, inst.key)
        else:
            decision = self.scheduler.schedule(inst.request)
        self.recorder.decision_seconds += time.perf_counter() - started
        self.recorder.decisions += 1
        return decision

    def _placed(self, inst: EdgeInstance, node: int, now: float) -> None:
        """``inst`` now runs on ``node`` (reserved in the state): record and check it."""
        self._put(inst, node)
        inst.placed = True
        self.placements += 1
        self._judge(inst, node, now)

    def _judge(self, inst: EdgeInstance, node: int, now: float) -> None:
        # An instance never counts as its own reference: a template cannot name itself.
        broken = self.check.broken(inst, node, self.hosts)
        if broken:
            if self.keep_bounds:
                self.violations_at_placement += 1
                self._example(inst, node, broken)
            else:
                self.bounds_unmet += 1
        self.user_rtt.add(self.check.user_rtt_ms(self.check.points(inst.app.area), node))
        if inst.failed_at is not None:
            self.recovered += 1
            self.recovered_within += not broken
            self.recovery_s.add(now - inst.failed_at)
            inst.failed_at = None

    def _example(self, inst: EdgeInstance, node: int, broken: list[str]) -> None:
        if len(self.examples) < 10:
            self.examples.append(f"{inst.key} on {self.state.names[node]}: {'; '.join(broken)}")

    def _put(self, inst: EdgeInstance, node: int) -> None:
        inst.node = node
        self.on_node.setdefault(node, set()).add(inst)
        self.hosts.setdefault(inst.service, set()).add(node)

    def _unput(self, inst: EdgeInstance) -> None:
        node = inst.node
        self.on_node[node].discard(inst)
        hosts = self.hosts[inst.service]
        if not any(
            other.node == node and other.service == inst.service for other in self.on_node[node]
        ):
            hosts.discard(node)
        inst.node = -1

    def _release(self, inst: EdgeInstance) -> None:
        """Release ``inst`` in the state (through the scheduler) and forget its node."""
        self.scheduler.release(inst.node, inst.request)
        self._unput(inst)

    # -- failures ------------------------------------------------------------------------

    def node_failed(self, node: int, now: float) -> None:
        """Node ``node`` failed: mark it down, move or requeue its instances, re-check all."""
        name = self.state.names[node]
        victims = sorted(self.on_node.get(node, ()), key=lambda inst: inst.key)
        if not victims:
            if self.state.healthy[node]:
                self.scheduler.set_healthy(name, False)
            return
        self.failures_hit += 1
        self.affected += len(victims)
        handled: set[str] = set()
        if self.planner is not None:
            # The planner marks the node down and releases or moves what it tracks; the
            # instances it moved must not be released again here.
            for move in self.planner.node_failed(node):
                handled.add(str(move.key))
                self._apply(move, node, now)
        elif self.state.healthy[node]:
            self.scheduler.set_healthy(name, False)
        for inst in victims:
            if inst.key in handled:
                continue
            self._release(inst)
            self._requeue(inst, now)
        self.retry(now)
        if self.keep_bounds:
            self._sweep()

    def _apply(self, move: Move, failed: int, now: float) -> None:
        inst = self.by_key.get(str(move.key))
        if inst is None:
            return  # not an edge instance
        self.moves[move.kind] += 1
        if move.kind == "failover" and move.target is not None:
            inst.failed_at = now
            self._unput(inst)
            self._put(inst, self.state.index[move.target])
            self.placements += 1
            within = self.recovered_within
            self._judge(inst, inst.node, now)
            self.failover_within += self.recovered_within - within
        elif move.kind == "requeue":
            self._unput(inst)  # the planner released it in the state already
            self._requeue(inst, now)
        elif move.kind == "migrate" and move.target is not None:
            self._unput(inst)
            self._put(inst, self.state.index[move.target])
            self.placements += 1
        # stranded: it stays where it is, out of bound; the sweep counts it

    def _requeue(self, inst: EdgeInstance, now: float) -> None:
        inst.failed_at = now
        self.pending.append(inst)

    def _sweep(self) -> None:
        """Re-check every running instance's bounds after a failure was handled."""
        for instances in self.on_node.values():
            for inst in sorted(instances, key=lambda i: i.key):
                broken = self.check.broken(inst, inst.node, self.hosts)
                if broken:
                    self.violations_after_failures += 1
                    self._example(inst, inst.node, broken)

    # -- results -------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        requested = self.requested
        placed = sum(inst.placed for app in self.apps for inst in app.instances)
        bounded_placed = sum(
            inst.placed for app in self.apps for inst in app.instances if inst.template.bounded
        )
        refused = sum(inst.refused for app in self.apps for inst in app.instances)
        running = sum(len(s) for s in self.on_node.values())
        waiting = sum(1 for inst in self.pending if inst.app.alive and not inst.refused)
        rtt = self.user_rtt.summary((50, 90, 99))
        recovery = self.recovery_s.summary((50, 99))
        out: dict[str, Any] = {
            "apps": len(self.apps),
            "bounds_given": self.keep_bounds,
            "instances_requested": requested,
            "instances_placed": placed,
            "success_rate": placed / requested if requested else 0.0,
            "bounded_requested": self.bounded_requested,
            "bounded_placed": bounded_placed,
            "bounded_success_rate": (
                bounded_placed / self.bounded_requested if self.bounded_requested else 0.0
            ),
            "refused_unresolvable": refused,
            "waiting_at_end": waiting,
            "running_at_end": running,
            "placements": self.placements,
            "violations": {
                "at_placement": self.violations_at_placement,
                "after_failures": self.violations_after_failures,
                "examples": list(self.examples),
            },
            "bounds_unmet": self.bounds_unmet,
            "rtt_to_users_ms": {k: rtt[k] for k in ("count", "mean", "p50", "p90", "p99")},
            "recovery": {
                "failures_hit": self.failures_hit,
                "affected": self.affected,
                "recovered": self.recovered,
                "recovered_within_bound": self.recovered_within,
                "within_bound_rate": (
                    self.recovered_within / self.affected if self.affected else None
                ),
                "time_s": {k: recovery[k] for k in ("p50", "p99", "max")},
                "moves": dict(self.moves),
                "failover_within_bound": self.failover_within,
            },
        }
        if self.planner is not None:
            final = self.planner.overhead()
            shares = self.overhead_share.summary((50,))
            out["reservation"] = {
                "cpu_share_of_allocatable_mean": shares["mean"],
                "cpu_share_of_allocatable_max": shares["max"],
                "at_end": dict(final),
            }
        return out


def vivaldi_knowledge(
    infra: Infrastructure, state: ClusterState, probes: int, seed: int
) -> dict[str, Any]:
    """Replace ``state``'s RTTs with Vivaldi coordinates fitted to sparse samples of the
    true matrix; returns the estimation error against the truth (``rtt_estimate``).

    Each node probes ``probes`` random nodes and ``probes`` nodes of its own cluster
    (:func:`~harmonia.sched.rtt.sample_pairs`), so it has about 4·``probes`` measured
    neighbours; the error is taken over up to 200,000 random pairs.
    """
    truth = infra.state.rtt
    if not isinstance(truth, MatrixRtt):
        raise InputError(
            [
                FieldError(
                    "topology.rtt_knowledge",
                    "vivaldi is fitted to samples of the true RTT matrix, which exists up "
                    f"to 2,000 nodes only (this run has {len(state)})",
                )
            ]
        )
    started = time.perf_counter()
    n = len(state)
    i, j = sample_pairs(n, probes, seed, groups=state.cluster_id, local=probes)
    rtt = truth.pair_rtts(i, j).astype(np.float64)
    keep = rtt > 0  # co-located nodes measure 0 ms, which a sample may not be
    coordinates = fit_vivaldi(n, (i[keep], j[keep], rtt[keep]), names=state.names, seed=seed)
    state.attach_rtt_source(coordinates)
    error = estimation_error(coordinates, truth, seed=seed)
    return {
        **error.as_dict(),
        "samples": int(keep.sum()),
        "probes_per_node": probes,
        "fit_seconds": time.perf_counter() - started,
    }


__all__ = ["BoundCheck", "EdgeApp", "EdgeInstance", "EdgeWorkload", "vivaldi_knowledge"]
