"""Scenarios: what one simulation run replays, on what, with which policy and knobs.

A scenario is a YAML or JSON document (``harmonia simulate SCENARIO.yaml``)::

    name: borg-day
    seed: 7
    policy: default
    step_s: 60                 # time-series resolution
    horizon_s: null            # null: until the trace ends and the system drains
    topology: {nodes: 1000, clusters: 10}     # or nodes_file (+ rtt_file, rtt_index)
    trace: {path: task_events.csv.gz, format: borg2011, skip_bad_lines: false}
    services: {apps: 40, interarrival_s: 120, templates: [...]}   # edge services (below)
    failures: {enabled: true, mtbf_s: 604800, mttr_s: 3600}
    lc: {enabled: true, requests_per_s: 20, service_time_ms: 5, slo_ms: 100}
    requests: {quantize: true, cpu_quantum_m: 10, memory_quantum_mib: 16}

A scenario replays a ``trace``, deploys edge ``services`` (:class:`ServicesConfig`,
simulated by :mod:`harmonia.sim.edge`), or both. ``topology.cluster_sizes`` gives each
generated cluster its own size; ``topology.rtt_knowledge: vivaldi`` lets the policy see
only Vivaldi coordinates fitted to sparse samples of the true RTT matrix.

Unknown fields are refused, and every problem is reported at once with its path
(``failures.mtbf_s: must be > 0``). Relative paths are resolved against the scenario
file's folder by :func:`load_scenario_text` when the caller passes ``base_dir``.

:class:`SimConfig` holds the knobs of :func:`harmonia.sim.simulate` that are not about
inputs (no paths, no policy); :meth:`Scenario.sim_config` extracts it. The CLI builds a
:class:`Scenario` from flags, or loads one, and calls :func:`run_scenario`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from harmonia.model import FieldError, InputError
from harmonia.model.documents import load_document
from harmonia.model.errors import from_pydantic

TraceFormat = Literal["borg2011", "borg2019", "alibaba2018", "azure2019"]
TRACE_FORMATS: tuple[str, ...] = ("borg2011", "borg2019", "alibaba2018", "azure2019")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TopologyConfig(_Model):
    """Generated nodes (``nodes`` over ``clusters``, or ``cluster_sizes``) or a node-list file.

    ``rtt_knowledge`` is what the policy knows of RTTs between nodes: ``matrix`` (the true
    matrix) or ``vivaldi`` (coordinates fitted to ``vivaldi_probes`` random and as many
    same-cluster probes per node, :func:`harmonia.sched.rtt.sample_pairs`); bounds are
    always checked against the true matrix.
    """

    nodes: int | None = Field(None, ge=1, le=1_000_000, description="generated node count")
    clusters: int = Field(1, ge=1, le=100_000)
    cluster_sizes: tuple[int, ...] | None = Field(
        None, min_length=1, max_length=1000, description="generated nodes per cluster"
    )
    rtt_knowledge: Literal["matrix", "vivaldi"] = "matrix"
    vivaldi_probes: int = Field(8, ge=1, le=256)
    nodes_file: Path | None = Field(None, description="node list as `harmonia nodes generate`")
    rtt_file: Path | None = Field(None, description="RTT matrix (ms) between the file's nodes")
    rtt_index: Path | None = Field(None, description="JSON map node name -> matrix row")

    @field_validator("cluster_sizes")
    @classmethod
    def _positive_sizes(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and any(size < 1 for size in value):
            raise ValueError("every cluster size must be >= 1")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TopologyConfig:
        if self.cluster_sizes is not None:
            if self.nodes_file is not None:
                raise ValueError("cluster_sizes generates nodes: give it or nodes_file, not both")
            total = sum(self.cluster_sizes)
            if self.clusters not in (1, len(self.cluster_sizes)):
                raise ValueError(
                    f"clusters ({self.clusters}) must equal len(cluster_sizes) "
                    f"({len(self.cluster_sizes)}) or be left out"
                )
            if self.nodes is not None and self.nodes != total:
                raise ValueError(f"nodes ({self.nodes}) must equal sum(cluster_sizes) ({total})")
            return self
        if (self.nodes is None) == (self.nodes_file is None):
            raise ValueError("give either nodes (to generate) or nodes_file, not both or neither")
        if (self.rtt_file is None) != (self.rtt_index is None):
            raise ValueError("rtt_file and rtt_index go together")
        if self.rtt_file is not None and self.nodes_file is None:
            raise ValueError("rtt_file needs nodes_file (generated nodes get generated RTTs)")
        if self.nodes is not None and self.clusters > self.nodes:
            raise ValueError(f"clusters ({self.clusters}) must not exceed nodes ({self.nodes})")
        return self


class TraceConfig(_Model):
    path: Path
    format: TraceFormat
    skip_bad_lines: bool = False


class FailureConfig(_Model):
    """Node failures and recoveries: exponential times, per node, seeded.

    A failed node's tasks are evicted; with ``requeue`` they wait for a node again (their
    life goes on and ends once, at its final outcome), without it they end as evicted.
    """

    enabled: bool = False
    mtbf_s: float = Field(7 * 86_400.0, gt=0, description="mean time between failures per node")
    mttr_s: float = Field(3_600.0, gt=0, description="mean time to repair")
    requeue: bool = True


class LCConfig(_Model):
    """Requests to latency-critical services (tasks with QoS class LC; a job = a service).

    Each service receives ``requests_per_s`` (Poisson, split evenly over all user
    points); see :mod:`harmonia.sim.lc` for routing and latency. With more than
    ``max_services`` services running, a seeded sample of that many is simulated per
    step, which bounds the cost of a step.
    """

    enabled: bool = True
    requests_per_s: float = Field(10.0, ge=0, description="per LC service")
    service_time_ms: float = Field(5.0, gt=0, description="mean service time per request")
    slo_ms: float = Field(100.0, gt=0, description="latency objective per request")
    users_per_area: int = Field(1, ge=1, le=1000)
    area_radius_km: float = Field(10.0, ge=0, le=1000)
    max_services: int = Field(
        128, ge=1, description="services simulated per step (a seeded sample beyond this)"
    )


class RequestConfig(_Model):
    """How trace tasks become placement requests.

    ``quantize`` rounds CPU and memory *up* to multiples of the quanta, so that tasks of
    nearly equal size share one request shape (the scheduler caches per shape); a task
    never gets less than it asked for. Requests below the minimum are raised to it (a
    trace request of 0 still occupies something). ``spread_job`` maps Borg's
    "different machines" restriction: ``hard`` (at most one task of the job per node,
    an anti-affinity constraint), ``soft`` (the job is a service the policy may spread)
    or ``ignore``. ``disk`` also places disk requests (as storage); off by default.
    """

    quantize: bool = True
    cpu_quantum_m: int = Field(10, ge=1)
    memory_quantum_mib: int = Field(16, ge=1)
    disk_quantum_mib: int = Field(256, ge=1)
    min_cpu_m: int = Field(10, ge=0)
    min_memory_mib: int = Field(16, ge=0)
    spread_job: Literal["hard", "soft", "ignore"] = "hard"
    disk: bool = False


_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"


class ServiceTemplate(_Model):
    """One microservice of every deployed edge application, with its bounds.

    Each bound becomes a hard constraint of the instances' requests: ``area_ms`` a
    ``LatencyConstraint(area=…)`` to the application's user area (every user point
    within the bound), ``location_ms`` one to a single user point of that area,
    ``geo_km`` a ``GeoConstraint`` around the area's centre, ``near`` a
    ``delay_<app>.<template>`` label per named template (RTT to the nearest running
    instance of that service of the same application). ``near`` may name only
    templates listed before this one, so references are deployed first.
    """

    name: str = Field(pattern=_NAME_PATTERN)
    replicas: int = Field(1, ge=1, le=100)
    cpu_m: int = Field(500, ge=1, le=1_000_000)
    memory_mib: int = Field(256, ge=1, le=10_000_000)
    area_ms: float | None = Field(None, gt=0, description="RTT bound to every user of the area")
    location_ms: float | None = Field(None, gt=0, description="RTT bound to one user point")
    geo_km: float | None = Field(None, gt=0, description="distance bound to the area's centre")
    near: dict[str, float] = Field(
        default_factory=dict, description="template name -> RTT bound (ms) to its instances"
    )

    @field_validator("near")
    @classmethod
    def _positive_delays(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ms in value.items():
            if not ms > 0:
                raise ValueError(f"near.{name}: must be > 0 ms, got {ms}")
        return value

    @property
    def bounded(self) -> bool:
        return bool(
            self.area_ms is not None
            or self.location_ms is not None
            or self.geo_km is not None
            or self.near
        )


class ServicesConfig(_Model):
    """Edge applications deployed over time (see :mod:`harmonia.sim.edge`).

    ``apps`` applications arrive with exponential gaps of mean ``interarrival_s`` (the
    first at the run's start), each in one user area drawn uniformly (one area per
    cluster, ``users_per_area`` points within ``area_radius_km`` of its centre), with
    every template's replicas; each leaves after an exponential lifetime of mean
    ``lifetime_s`` (never when null). ``drop_bounds_for`` lists policies that get the
    same services without their latency and geo bounds (a policy without the Latency
    and Geo plugins refuses bounded requests as UNRESOLVABLE; without the bounds its
    placements and RTT to users can be compared, and the bounds they would break are
    counted as ``bounds_unmet``).
    """

    apps: int = Field(20, ge=1, le=100_000)
    interarrival_s: float = Field(300.0, gt=0)
    lifetime_s: float | None = Field(None, gt=0)
    users_per_area: int = Field(4, ge=1, le=1000)
    area_radius_km: float = Field(10.0, ge=0, le=1000)
    drop_bounds_for: tuple[str, ...] = ()
    templates: tuple[ServiceTemplate, ...] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _references(self) -> ServicesConfig:
        seen: set[str] = set()
        for k, template in enumerate(self.templates):
            if template.name in seen:
                raise ValueError(f"templates[{k}].name: {template.name!r} is listed twice")
            for name in template.near:
                if name not in seen:
                    raise ValueError(
                        f"templates[{k}].near: {name!r} is not a template listed before "
                        f"{template.name!r}"
                    )
            seen.add(template.name)
        return self


class SimConfig(_Model):
    """The knobs of one run that are not inputs."""

    horizon_s: float | None = Field(None, gt=0, description="stop at this simulated time")
    step_s: float = Field(60.0, gt=0, description="time-series resolution")
    drain_s: float = Field(
        7 * 86_400.0, ge=0, description="longest run after the trace ends (horizon unset)"
    )
    failures: FailureConfig = FailureConfig()
    lc: LCConfig = LCConfig()
    requests: RequestConfig = RequestConfig()
    services: ServicesConfig | None = None
    rtt_knowledge: Literal["matrix", "vivaldi"] = "matrix"
    vivaldi_probes: int = Field(8, ge=1, le=256)


class Scenario(_Model):
    name: str = Field("scenario", min_length=1, max_length=200)
    seed: int = Field(0, ge=0, le=2**63 - 1)
    policy: str = "default"
    horizon_s: float | None = Field(None, gt=0)
    step_s: float = Field(60.0, gt=0)
    drain_s: float = Field(7 * 86_400.0, ge=0)
    topology: TopologyConfig
    # services before trace: the trace's validator reads whether services were given.
    services: ServicesConfig | None = None
    trace: TraceConfig | None = Field(None, validate_default=True)
    failures: FailureConfig = FailureConfig()
    lc: LCConfig = LCConfig()
    requests: RequestConfig = RequestConfig()

    @field_validator("trace")
    @classmethod
    def _some_workload(cls, value: TraceConfig | None, info: ValidationInfo) -> TraceConfig | None:
        # A trace is required unless services were given (and valid: a broken services
        # section reports its own errors, not a missing trace as well).
        if value is None and "services" in info.data and info.data["services"] is None:
            raise PydanticCustomError("missing", "a trace is required without services")
        return value

    @model_validator(mode="after")
    def _workload(self) -> Scenario:
        if self.services is not None and self.horizon_s is None:
            raise ValueError("horizon_s: required with services (when the run ends)")
        return self

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        from harmonia.sched import policy_names

        known = policy_names()
        if value not in known:
            raise ValueError(f"unknown policy {value!r}; known policies: {', '.join(known)}")
        return value

    def sim_config(self) -> SimConfig:
        return SimConfig(
            horizon_s=self.horizon_s,
            step_s=self.step_s,
            drain_s=self.drain_s,
            failures=self.failures,
            lc=self.lc,
            requests=self.requests,
            services=self.services,
            rtt_knowledge=self.topology.rtt_knowledge,
            vivaldi_probes=self.topology.vivaldi_probes,
        )

    def resolved(self, base_dir: Path) -> Scenario:
        """This scenario with relative paths taken relative to ``base_dir``."""

        def fix(path: Path | None) -> Path | None:
            return None if path is None or path.is_absolute() else base_dir / path

        topology = self.topology.model_copy(
            update={
                key: fix(getattr(self.topology, key))
                for key in ("nodes_file", "rtt_file", "rtt_index")
                if fix(getattr(self.topology, key)) is not None
            }
        )
        trace = (
            None
            if self.trace is None
            else self.trace.model_copy(update={"path": fix(self.trace.path) or self.trace.path})
        )
        return self.model_copy(update={"topology": topology, "trace": trace})


def parse_scenario(data: object, source: str = "", base_dir: Path | None = None) -> Scenario:
    """Validate decoded scenario data; :class:`InputError` lists every problem with its path."""
    if not isinstance(data, dict):
        what = "empty document" if data is None else f"got {type(data).__name__}"
        raise InputError([FieldError("", f"must be an object ({what})")], source)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise from_pydantic(exc, source=source) from None
    return scenario.resolved(base_dir) if base_dir is not None else scenario


def load_scenario_text(text: str, source: str = "", base_dir: Path | None = None) -> Scenario:
    """Decode YAML/JSON text and validate it (see :func:`parse_scenario`)."""
    return parse_scenario(load_document(text, source), source, base_dir)


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file; relative paths in it are relative to its folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError([FieldError("", "file not found")], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError([FieldError("", f"cannot be read: {exc}")], str(path)) from None
    return load_scenario_text(text, str(path), path.parent)
