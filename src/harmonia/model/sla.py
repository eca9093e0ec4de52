"""The SLA descriptor v2: how a user describes applications and their microservices.

The format is Oakestra's deployment descriptor (Bartolomeo et al., "Oakestra: A
Lightweight Hierarchical Orchestration Framework for Edge Computing", USENIX ATC'23):
``sla_version``, ``customerID`` and ``applications[]``, each with ``microservices[]``
that state their resources (``memory`` MiB, ``vcpus``, ``vgpus``, ...), code, ports,
``constraints[]`` and ``connectivity[]``. An Oakestra descriptor is accepted unchanged;
unknown fields are rejected, so a typo never passes silently. Harmonia adds three
optional microservice fields: ``replicas`` (default 1), ``slo_ms`` and ``qos_class``
(default ``LC`` when ``slo_ms`` is given, else ``BE``), and two native constraint
types, ``node_affinity`` and ``anti_affinity``.

The models keep the Oakestra shape so the control plane can store a descriptor as it
came (:meth:`SLADescriptor.to_dict`); :meth:`SLADescriptor.to_requests` turns it into
the :class:`~harmonia.model.request.PlacementRequest` objects the scheduling core works
on. Callers: the CLI (``harmonia schedule --workload``) and the root API read the file
or request body and call :func:`parse_sla_text` or :func:`parse_sla`; this module does
no I/O. Every validation problem is reported at once, each with its JSON path.

Units: ``memory`` and ``storage`` in MiB, ``vcpus`` in cores (fractional: ``0.1`` is
100 millicores), ``bandwidth_in``/``bandwidth_out`` in kbit/s, latency thresholds in
milliseconds, geo thresholds in kilometres. Oakestra's ``rigidness`` and
``convergence_time`` are kept in the descriptor, but Harmonia's constraints are hard,
so the conversion treats every constraint as fully rigid.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from harmonia.model.constraints import (
    AntiAffinityConstraint,
    Constraint,
    DirectConstraint,
    GeoConstraint,
    LatencyConstraint,
    NodeAffinityConstraint,
)
from harmonia.model.documents import load_document
from harmonia.model.errors import FieldError, InputError, from_pydantic, register_union_tags
from harmonia.model.node import GeoPoint
from harmonia.model.qos import QoSClass
from harmonia.model.request import PlacementRequest
from harmonia.model.resources import Resources
from harmonia.model.service import MAX_REPLICAS, ServiceSpec

NAME_MAX_LENGTH = 10
"""Application, microservice and namespace names: 1 to 10 ASCII letters or digits."""

MAX_VCPUS = 100_000
"""Sanity bound on ``vcpus``; keeps the conversion to millicores finite."""

"""Sanity bound on ``replicas``, so a typo cannot expand into billions of requests."""

LABEL_APP = "harmonia.io/app"
LABEL_NAMESPACE = "harmonia.io/namespace"
LABEL_SLO_MS = "harmonia.io/slo-ms"

_NAME_RE = re.compile(rf"[A-Za-z0-9]{{1,{NAME_MAX_LENGTH}}}")
_VERSION_RE = re.compile(r"v?2(\.[0-9]+)*")
_PORT_ENTRY_RE = re.compile(r"([0-9]+)(?::([0-9]+))?(?:/(tcp|udp))?")
_REFERENCES_CHECKED = "harmonia.sla.references_checked"


# --- field rules -------------------------------------------------------------------


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"must be 1-{NAME_MAX_LENGTH} letters or digits")
    return value


def _check_version(value: str) -> str:
    if not _VERSION_RE.fullmatch(value):
        raise ValueError(f"unsupported SLA version {value!r}; expected v2.x")
    return value


def parse_location(text: str) -> GeoPoint:
    """Parse Oakestra's ``"lat,long"`` (degrees) into a :class:`GeoPoint`.

    Raises ``ValueError`` with the rule broken, e.g. ``latitude must be in -90..90``.
    """
    try:
        lat, long = (float(part) for part in text.split(","))
    except ValueError:  # not two parts, or not numbers
        lat = long = math.nan
    if not (math.isfinite(lat) and math.isfinite(long)):
        raise ValueError("must be 'lat,long' in degrees, e.g. '48.13,11.57'")
    if not -90 <= lat <= 90:
        raise ValueError("latitude must be in -90..90")
    if not -180 <= long <= 180:
        raise ValueError("longitude must be in -180..180")
    return GeoPoint(lat=lat, long=long)


def _check_location(value: str) -> str:
    parse_location(value)
    return value


@dataclass(frozen=True)
class PortMapping:
    """One entry of Oakestra's ``port`` field: ``HOST[:CONTAINER][/tcp|udp]``."""

    host_port: int
    container_port: int
    protocol: Literal["tcp", "udp"] = "tcp"


def parse_ports(spec: str) -> tuple[PortMapping, ...]:
    """Parse ``"80:8080;90/udp"``; ``""`` means no ports. Raises ``ValueError``."""
    if not spec.strip():
        return ()
    mappings = []
    for entry in spec.split(";"):
        match = _PORT_ENTRY_RE.fullmatch(entry.strip())
        if match is None:
            raise ValueError(
                f"invalid port entry {entry.strip()!r}; expected PORT[:PORT][/tcp|udp] "
                "entries separated by ';'"
            )
        host = int(match[1])
        container = int(match[2]) if match[2] else host
        for port in (host, container):
            if not 1 <= port <= 65535:
                raise ValueError(f"port {port} is out of range 1..65535")
        protocol: Literal["tcp", "udp"] = "udp" if match[3] == "udp" else "tcp"
        mappings.append(PortMapping(host, container, protocol))
    return tuple(mappings)


def _check_ports(value: str) -> str:
    parse_ports(value)
    return value


def _check_ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("must be an IPv4 address, e.g. 10.30.30.30") from None
    return value


def _check_ipv6(value: str) -> str:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        raise ValueError("must be an IPv6 address") from None
    return value


def _check_positive(value: float) -> float:
    # Our own rule rather than Field(gt=0): pydantic would say "must be > 0.0".
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    if value <= 0:
        raise ValueError("must be > 0")
    return value


def _check_fraction(value: float) -> float:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError("must be in 0..1")
    return value


def _check_vcpus(value: float) -> float:
    _check_positive(value)
    if value > MAX_VCPUS:
        raise ValueError(f"must be <= {MAX_VCPUS}")
    if round(value * 1000) < 1:
        raise ValueError("must be at least 0.001 (1 millicore)")
    return value


def _check_not_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    # Not Field(min_length=1): pydantic also reports it when an item was invalid.
    if not value:
        raise ValueError("must have at least 1 item")
    return value


def _lowercase(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


SLAName = Annotated[str, AfterValidator(_check_name)]
_Count = Annotated[int, Field(strict=True, ge=0)]
_Float = Annotated[float, Field(strict=True)]
_Positive = Annotated[_Float, AfterValidator(_check_positive)]
_Location = Annotated[str, AfterValidator(_check_location)]
_Rigidness = Annotated[_Float, AfterValidator(_check_fraction)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Virtualization(StrEnum):
    """How a microservice runs. Matched case-insensitively."""

    CONTAINER = "container"
    OCI = "oci"
    UNIKERNEL = "unikernel"
    VM = "vm"
    PROCESS = "process"


# --- constraints ---------------------------------------------------------------------


class SLADirectConstraint(_Model):
    """Oakestra ``direct``: only these nodes (``"n1;n2"``) and/or this cluster."""

    type: Literal["direct"] = "direct"
    node: str = ""
    cluster: str = ""

    @model_validator(mode="after")
    def _needs_target(self) -> SLADirectConstraint:
        if not self.cluster.strip() and not self.node.strip(" ;"):
            raise ValueError("direct constraint needs a cluster or a node list")
        return self

    def to_constraint(self) -> DirectConstraint:
        nodes = tuple(part.strip() for part in self.node.split(";") if part.strip())
        return DirectConstraint(cluster=self.cluster.strip() or None, nodes=nodes)


class SLALatencyConstraint(_Model):
    """Oakestra ``latency``: within ``threshold`` ms of an area, a target or a location."""

    type: Literal["latency"] = "latency"
    threshold: _Positive
    area: str | None = None
    target: str | None = Field(None, description="a node name or a microservice name")
    location: _Location | None = None
    rigidness: _Rigidness | None = None
    convergence_time: _Count | None = Field(None, description="seconds")

    @model_validator(mode="after")
    def _needs_reference(self) -> SLALatencyConstraint:
        if self.area is None and self.target is None and self.location is None:
            raise ValueError("latency constraint needs an area, a target or a location")
        return self

    def to_constraint(self) -> LatencyConstraint:
        location = parse_location(self.location) if self.location is not None else None
        return LatencyConstraint(
            threshold_ms=self.threshold, area=self.area, target=self.target, location=location
        )


class SLAGeoConstraint(_Model):
    """Oakestra ``geo``: within ``threshold`` km of ``location`` (``"lat,long"``)."""

    type: Literal["geo"] = "geo"
    location: _Location
    threshold: _Positive
    rigidness: _Rigidness | None = None
    convergence_time: _Count | None = None

    def to_constraint(self) -> GeoConstraint:
        return GeoConstraint(location=parse_location(self.location), threshold_km=self.threshold)


SLAConstraint = Annotated[
    SLADirectConstraint
    | SLALatencyConstraint
    | SLAGeoConstraint
    | NodeAffinityConstraint
    | AntiAffinityConstraint,
    Field(discriminator="type"),
]


class ConnectivityLatency(_Model):
    """Round-trip time to the target microservice at most ``threshold`` ms."""

    type: Literal["latency"] = "latency"
    threshold: _Positive
    rigidness: _Rigidness | None = None
    convergence_time: _Count | None = None


class ConnectivityGeo(_Model):
    """Distance to the target microservice at most ``threshold`` km."""

    type: Literal["geo"] = "geo"
    threshold: _Positive
    rigidness: _Rigidness | None = None
    convergence_time: _Count | None = None


ConnectivityConstraint = Annotated[
    ConnectivityLatency | ConnectivityGeo, Field(discriminator="type")
]


class Connectivity(_Model):
    """Constraints between this microservice and another one of the same application.

    Oakestra names the target by ``target_microservice_id``, which is empty until the
    control plane assigns ids; Harmonia also accepts ``target_microservice_name``.
    """

    target_microservice_id: str = ""
    target_microservice_name: str = ""
    con_constraints: tuple[ConnectivityConstraint, ...] = ()

    @model_validator(mode="after")
    def _needs_target(self) -> Connectivity:
        if not self.target_microservice_id and not self.target_microservice_name:
            raise ValueError("needs target_microservice_name or target_microservice_id")
        return self


# --- the descriptor --------------------------------------------------------------------


class AddressInstance(_Model):
    """An entry of Oakestra's ``addresses.instances``, kept as written."""

    from_: str = Field("", alias="from")
    to: str = ""
    start: str = ""


class Addresses(_Model):
    """Semantic addresses of a microservice (Oakestra's service IPs)."""

    rr_ip: Annotated[str, AfterValidator(_check_ipv4)] | None = None
    rr_ip_v6: Annotated[str, AfterValidator(_check_ipv6)] | None = None
    closest_ip: Annotated[str, AfterValidator(_check_ipv4)] | None = None
    closest_ip_v6: Annotated[str, AfterValidator(_check_ipv6)] | None = None
    instances: tuple[AddressInstance, ...] = ()


class Microservice(_Model):
    """One microservice: what it runs, what it needs, where it may run.

    ``args``, ``environment`` and ``one_shot`` are Oakestra runtime fields, carried for
    the control plane; they do not affect placement.
    """

    microservice_id: str = Field("", alias="microserviceID")
    microservice_name: SLAName
    microservice_namespace: SLAName
    virtualization: Annotated[Virtualization, BeforeValidator(_lowercase)]
    cmd: tuple[str, ...] = ()
    memory: Annotated[int, Field(strict=True, gt=0, description="MiB")]
    vcpus: Annotated[_Float, AfterValidator(_check_vcpus), Field(description="cores")]
    vgpus: _Count = 0
    vtpus: _Count = 0
    bandwidth_in: _Count = Field(0, description="kbit/s")
    bandwidth_out: _Count = Field(0, description="kbit/s")
    storage: _Count = Field(0, description="MiB")
    code: str
    state: str = ""
    port: Annotated[str, AfterValidator(_check_ports)] = ""
    addresses: Addresses | None = None
    added_files: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()
    one_shot: Annotated[bool, Field(strict=True)] = False
    constraints: tuple[SLAConstraint, ...] = ()
    connectivity: tuple[Connectivity, ...] = ()
    # Harmonia's extensions.
    replicas: Annotated[int, Field(strict=True, ge=1, le=MAX_REPLICAS)] = 1
    slo_ms: _Positive | None = None
    qos_class: QoSClass | None = None

    @property
    def effective_qos_class(self) -> QoSClass:
        """``qos_class`` if given, else ``LC`` when an SLO is stated, else ``BE``."""
        if self.qos_class is not None:
            return self.qos_class
        return QoSClass.LC if self.slo_ms is not None else QoSClass.BE

    @property
    def cpu_m(self) -> int:
        """``vcpus`` in millicores: 0.1 -> 100."""
        return round(self.vcpus * 1000)

    @property
    def ports(self) -> tuple[PortMapping, ...]:
        return parse_ports(self.port)


class Application(_Model):
    """An application: microservices deployed together under one name."""

    application_id: str = Field("", alias="applicationID")
    application_name: SLAName
    application_namespace: SLAName
    application_desc: str = ""
    microservices: Annotated[tuple[Microservice, ...], AfterValidator(_check_not_empty)]


class SLADescriptor(_Model):
    """A whole SLA descriptor: one customer's applications."""

    sla_version: Annotated[str, AfterValidator(_check_version)]
    customer_id: str = Field(alias="customerID")
    applications: Annotated[tuple[Application, ...], AfterValidator(_check_not_empty)]

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> SLADescriptor:
        # parse_sla checks references on the raw document (so they are reported along
        # with field errors, with full paths) and tells us through the context.
        if isinstance(info.context, Mapping) and info.context.get(_REFERENCES_CHECKED):
            return self
        errors = _reference_errors(self.model_dump(by_alias=True))
        if errors:
            raise ValueError("; ".join(str(e) for e in errors))
        return self

    def to_dict(self) -> dict[str, Any]:
        """The descriptor in Oakestra's JSON shape (absent optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_services(self) -> list[ServiceSpec]:
        """One :class:`ServiceSpec` per microservice.

        A service's key is ``{application}.{microservice}``, so equal microservice names
        in different applications stay apart; a connectivity latency bound becomes a
        latency constraint whose target is the other microservice's key. Raises
        :class:`InputError` for what Harmonia cannot schedule rather than dropping it:
        TPUs (``vtpus`` > 0) and geo connectivity between microservices.
        """
        errors = self._unschedulable()
        if errors:
            raise InputError(errors)
        services: list[ServiceSpec] = []
        for app in self.applications:
            names_by_id = {ms.microservice_id: ms.microservice_name for ms in app.microservices}
            services.extend(_service(app, ms, names_by_id) for ms in app.microservices)
        return services

    def to_requests(self) -> list[PlacementRequest]:
        """One placement request per replica of every microservice, ids
        ``{application}.{microservice}.{i}`` with ``i`` from 0 (see :meth:`to_services`)."""
        return [request for service in self.to_services() for request in service.requests()]

    def _unschedulable(self) -> list[FieldError]:
        errors = []
        for a, app in enumerate(self.applications):
            for m, ms in enumerate(app.microservices):
                at = f"applications[{a}].microservices[{m}]"
                if ms.vtpus:
                    errors.append(FieldError(f"{at}.vtpus", "TPUs are not schedulable yet"))
                errors.extend(
                    FieldError(f"{at}.connectivity[{c}].con_constraints[{k}]", _NO_GEO_LINKS)
                    for c, conn in enumerate(ms.connectivity)
                    for k, con in enumerate(conn.con_constraints)
                    if isinstance(con, ConnectivityGeo)
                )
        return errors


_NO_GEO_LINKS = "geo connectivity between microservices is not schedulable yet"


def _service(app: Application, ms: Microservice, names_by_id: dict[str, str]) -> ServiceSpec:
    constraints: list[Constraint] = []
    for constraint in ms.constraints:
        if isinstance(constraint, NodeAffinityConstraint | AntiAffinityConstraint):
            constraints.append(constraint)  # Harmonia-native: already the model's type
        else:
            constraints.append(constraint.to_constraint())
    for link in ms.connectivity:
        target = link.target_microservice_name or names_by_id[link.target_microservice_id]
        constraints.extend(
            LatencyConstraint(threshold_ms=con.threshold, target=f"{app.application_name}.{target}")
            for con in link.con_constraints
            if isinstance(con, ConnectivityLatency)
        )
    labels = {LABEL_APP: app.application_name, LABEL_NAMESPACE: app.application_namespace}
    if ms.slo_ms is not None:
        labels[LABEL_SLO_MS] = f"{ms.slo_ms:g}"
    return ServiceSpec(
        name=ms.microservice_name,
        application=app.application_name,
        qos_class=ms.effective_qos_class,
        resources=Resources(
            cpu_m=ms.cpu_m,  # CPU comes from `vcpus` and nothing else, in millicores
            memory_mib=ms.memory,
            gpu=ms.vgpus,
            storage_mib=ms.storage,
            bandwidth_in_kbps=ms.bandwidth_in,
            bandwidth_out_kbps=ms.bandwidth_out,
        ),
        replicas=ms.replicas,
        slo_ms=ms.slo_ms,
        labels=labels,
        constraints=tuple(constraints),
    )


register_union_tags(("direct", "latency", "geo", "node_affinity", "anti_affinity"))


# --- cross references ---------------------------------------------------------------


def _reference_errors(data: object) -> list[FieldError]:
    """Unique names and connectivity targets, checked on the raw document.

    Looks only at the parts of the document that have the right shape, so these errors
    are reported together with the field errors of the rest.
    """
    errors: list[FieldError] = []
    app_names: dict[str, str] = {}
    for a, app in _objects(data, "applications"):
        _unique(errors, app_names, app, "application_name", f"applications[{a}]")
        names: dict[str, str] = {}
        ids: dict[str, str] = {}
        services = _objects(app, "microservices")
        for m, ms in services:
            _unique(errors, names, ms, "microservice_name", f"applications[{a}].microservices[{m}]")
            _unique(errors, ids, ms, "microserviceID", f"applications[{a}].microservices[{m}]")
        for m, ms in services:
            at = f"applications[{a}].microservices[{m}]"
            for c, link in _objects(ms, "connectivity"):
                for key, index in (
                    ("target_microservice_name", names),
                    ("target_microservice_id", ids),
                ):
                    target = link.get(key)
                    if not isinstance(target, str) or not target or index.get(target, at) != at:
                        continue
                    message = (
                        "must not be the microservice itself"
                        if target in index
                        else f"no microservice {target!r} in this application"
                    )
                    errors.append(FieldError(f"{at}.connectivity[{c}].{key}", message))
    return errors


def _objects(data: object, key: str) -> list[tuple[int, dict[str, Any]]]:
    """The objects of the list ``data[key]`` with their indexes; none where shapes differ."""
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list | tuple):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _unique(
    errors: list[FieldError], seen: dict[str, str], obj: dict[str, Any], key: str, at: str
) -> None:
    """Record ``obj[key]`` as found at path ``at``; an error if it was seen before."""
    value = obj.get(key)
    if isinstance(value, str) and value:
        if value in seen:
            errors.append(
                FieldError(f"{at}.{key}", f"duplicate {key} {value!r} (also {seen[value]})")
            )
        seen.setdefault(value, at)


# --- entry points -------------------------------------------------------------------


def parse_sla(data: object, source: str = "") -> SLADescriptor:
    """Validate a decoded document (dicts, lists, scalars) as an SLA descriptor.

    Raises :class:`InputError` carrying every problem found, each with its JSON path
    (``applications[0].microservices[1].memory: must be > 0``).
    """
    if not isinstance(data, dict):
        what = "empty document" if data is None else f"got {type(data).__name__}"
        raise InputError([FieldError("", f"must be an object ({what})")], source)
    references = _reference_errors(data)
    try:
        descriptor = SLADescriptor.model_validate(data, context={_REFERENCES_CHECKED: True})
    except ValidationError as exc:
        field_errors = from_pydantic(exc, source=source).errors
        raise InputError([*field_errors, *references], source) from exc
    if references:
        raise InputError(references, source)
    return descriptor


def parse_sla_text(text: str, source: str = "") -> SLADescriptor:
    """Parse an SLA descriptor from JSON or YAML text (the caller reads the file).

    A syntax error becomes an :class:`InputError` naming line and column.
    """
    return parse_sla(load_document(text, source), source)
