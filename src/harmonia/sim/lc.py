"""Requests to latency-critical (LC) services: routing, queueing and SLO violations.

Called by the simulator once per time step. An LC *service* is a trace job whose tasks
have QoS class ``LC``; each running task is one *instance* on its node.

Model, per step of ``dt`` seconds and per service with at least one instance:

1. Every user point ``p`` (see :meth:`Infrastructure.areas
   <harmonia.sim.infra.Infrastructure.areas>`) sends ``N[p] ~ Poisson(rate · dt / P)``
   requests, ``rate`` = ``requests_per_s``, ``P`` = number of user points.
2. All of ``p``'s requests go to the instance with the lowest *expected* latency
   ``RTT(p, node) + W(λ_prev)``, where ``W`` is the M/M/1 sojourn time (queueing plus
   service) at the arrival rate the instance had in the previous step (ties: the
   instance placed first).
3. Each instance's arrival rate this step is ``λ = requests routed to it / dt`` and a
   request's latency is ``RTT(p, node) + W(λ)`` with
   ``W(λ) = service_time / (1 - min(λ/μ, 0.99))``, ``μ = 1000 / service_time_ms`` per s.
   The cap at ρ = 0.99 stands for a saturated queue (100 service times).
4. A request violates the SLO when its latency exceeds ``slo_ms``.

Worked example: one user point, one instance 12 ms away, service time 5 ms
(μ = 200/s), 6,000 requests in a 60 s step → λ = 100/s, ρ = 0.5,
W = 5 / (1 - 0.5) = 10 ms, latency 12 + 10 = 22 ms for each of them.

A request's latency is the expected latency of its (user point, instance) pair, so the
percentiles are over requests weighted this way. Everything is vectorized over
(user points × instances); no Python work per request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from harmonia.sim.infra import Infrastructure
from harmonia.sim.metrics import LatencyHistogram
from harmonia.sim.scenario import LCConfig

RHO_CAP = 0.99

FloatArray = npt.NDArray[np.float64]


class LCModel:
    """Instances per LC service and the request model above.

    Instances live in numpy slot arrays (node, service, last arrival rate), so a step
    costs a few vector operations over (user points × instances) and no Python work per
    instance. When more than ``max_services`` services run, a seeded random sample of
    that many is simulated in the step (the others send no requests then); percentiles
    and the violation rate are estimated from the sample, and ``requests`` counts the
    requests simulated.
    """

    def __init__(self, infra: Infrastructure, config: LCConfig, rng: np.random.Generator) -> None:
        self.infra = infra
        self.config = config
        self.rng = rng
        self.areas = infra.areas(config.users_per_area, config.area_radius_km)
        self.gateways = infra.gateways(self.areas) if infra.given_topology else None
        self.mu = 1000.0 / config.service_time_ms
        self.histogram = LatencyHistogram()
        self.requests = 0
        self.violations = 0
        self.services_sampled = 0  # steps in which services were sampled
        self._service_ids: dict[str, int] = {}
        self._service_sizes: dict[int, int] = {}
        self._next_service = 0
        # Whether service id i has instances now; np.flatnonzero lists the running
        # services in id order (sorting the ids of ``_service_sizes`` per step cost more).
        self._service_running = np.zeros(64, dtype=bool)
        self._slots: dict[Any, int] = {}
        self._free_slots: list[int] = []
        size = 64
        self._node = np.zeros(size, dtype=np.intp)
        self._service = np.zeros(size, dtype=np.int64)
        self._load = np.zeros(size, dtype=np.float64)
        self._active = np.zeros(size, dtype=bool)
        self._order = np.zeros(size, dtype=np.int64)  # placement order, for tie-breaks
        self._placed = 0
        points = len(self.areas)
        self._rtt = np.zeros((points, len(infra)), dtype=np.float32)
        self._rtt_known = np.zeros(len(infra), dtype=bool)

    @property
    def instances(self) -> int:
        return len(self._slots)

    def add(self, service: str, key: Any, node: int) -> None:
        """Instance ``key`` of ``service`` runs on ``node`` from now on."""
        sid = self._service_ids.get(service)
        if sid is None:
            sid = self._next_service
            self._next_service += 1
            if sid == len(self._service_running):
                self._service_running = np.append(self._service_running, np.zeros(sid, dtype=bool))
            self._service_running[sid] = True
            self._service_ids[service] = sid
        self._service_sizes[sid] = self._service_sizes.get(sid, 0) + 1
        if not self._free_slots:
            self._grow()
        slot = self._free_slots.pop()
        self._slots[key] = slot
        self._node[slot] = node
        self._service[slot] = sid
        self._load[slot] = 0.0
        self._active[slot] = True
        self._order[slot] = self._placed
        self._placed += 1

    def remove(self, service: str, key: Any) -> None:
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        self._active[slot] = False
        self._free_slots.append(slot)
        sid = self._service_ids[service]
        left = self._service_sizes[sid] - 1
        if left:
            self._service_sizes[sid] = left
        else:
            del self._service_sizes[sid]
            self._service_running[sid] = False
            del self._service_ids[service]

    def _grow(self) -> None:
        old = len(self._node)
        new = max(64, old * 2)
        self._node = np.resize(self._node, new)
        self._service = np.resize(self._service, new)
        self._load = np.resize(self._load, new)
        self._order = np.resize(self._order, new)
        active = np.zeros(new, dtype=bool)
        active[:old] = self._active
        self._active = active
        # Highest slot popped last, so slots fill from 0 upwards.
        self._free_slots.extend(range(new - 1, old - 1, -1))

    def sojourn_ms(self, rate: FloatArray) -> FloatArray:
        rho = np.minimum(rate / self.mu, RHO_CAP)
        out: FloatArray = self.config.service_time_ms / (1.0 - rho)
        return out

    def _rtt_columns(self, nodes: npt.NDArray[np.intp]) -> FloatArray:
        missing = ~self._rtt_known[nodes]
        if missing.any():
            unknown = np.unique(nodes[missing])
            points = np.arange(len(self.areas), dtype=np.intp)
            self._rtt[:, unknown] = self.infra.user_rtt_ms(
                self.areas, points[:, None], unknown[None, :], self.gateways
            )
            self._rtt_known[unknown] = True
        columns: FloatArray = self._rtt[:, nodes].astype(np.float64)
        return columns

    def step(self, dt: float) -> dict[str, float | int]:
        """Requests of one step of ``dt`` seconds; returns the step's figures."""
        out: dict[str, float | int] = {
            "lc_requests": 0,
            "lc_slo_violations": 0,
            "lc_p50_ms": 0.0,
            "lc_p99_ms": 0.0,
        }
        if not self._slots or dt <= 0:
            return out
        slots = np.flatnonzero(self._active)
        services = self._service[slots]
        limit = self.config.max_services
        if len(self._service_sizes) > limit:
            running = np.flatnonzero(self._service_running)
            chosen_services = self.rng.choice(running, size=limit, replace=False)
            # NOTE: a lookup table over service ids; np.isin sorts both sides each step.
            sampled = np.zeros(self._next_service, dtype=bool)
            sampled[chosen_services] = True
            keep = sampled[services]
            slots, services = slots[keep], services[keep]
            self.services_sampled += 1
        # Instances grouped by service, in placement order within a service.
        order = np.lexsort((self._order[slots], services))
        slots, services = slots[order], services[order]
        count = len(slots)
        instance = np.arange(count)
        boundary = np.empty(count, dtype=bool)
        boundary[0] = True
        np.not_equal(services[1:], services[:-1], out=boundary[1:])
        starts = np.flatnonzero(boundary)
        segment = np.cumsum(boundary) - 1  # each instance's service, numbered 0..
        rtt = self._rtt_columns(self._node[slots])  # (points, instances)
        expected = rtt + self.sojourn_ms(self._load[slots])
        best = np.minimum.reduceat(expected, starts, axis=1)  # (points, services)
        candidates = np.where(expected == best[:, segment], instance, count)
        chosen = np.minimum.reduceat(candidates, starts, axis=1)
        lam = self.config.requests_per_s * dt / len(self.areas)
        requests = self.rng.poisson(lam, size=chosen.shape).astype(np.float64)
        rate = np.bincount(chosen.ravel(), weights=requests.ravel(), minlength=count) / dt
        self._load[slots] = rate
        points = np.arange(len(self.areas))[:, None]
        latency = rtt[points, chosen] + self.sojourn_ms(rate)[chosen]
        flat_latency, flat_requests = latency.ravel(), requests.ravel()
        total = int(flat_requests.sum())
        violations = int(flat_requests[flat_latency > self.config.slo_ms].sum())
        step_histogram = self.histogram.add(flat_latency, flat_requests)
        self.requests += total
        self.violations += violations
        out["lc_requests"] = total
        out["lc_slo_violations"] = violations
        out["lc_p50_ms"] = step_histogram.percentile(50)
        out["lc_p99_ms"] = step_histogram.percentile(99)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "slo_ms": self.config.slo_ms,
            "slo_violations": self.violations,
            "slo_violation_rate": self.violations / self.requests if self.requests else 0.0,
            "latency_ms": self.histogram.summary(),
            "steps_sampled": self.services_sampled,
        }
