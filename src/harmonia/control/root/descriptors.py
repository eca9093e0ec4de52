"""From an SLA descriptor to what the root stores, schedules and asks clusters to run.

The descriptor is Oakestra's (validated by :func:`harmonia.model.parse_sla`); this module
adds the one rule of a root that runs things for real: every microservice must be
runnable on the nodes without pulling an image. A microservice runs as a ``process``
from its ``cmd`` (plus ``args``), or as an ``oci`` container when its virtualization is
``container``/``oci`` and its ``code`` is an absolute path to a local root filesystem or
image archive (it still needs ``cmd``: the process to start inside it). Every problem is
reported with its JSON path, all at once, as :class:`~harmonia.model.InputError`.

The scheduling side is the model's: :meth:`SLADescriptor.to_services` gives each
microservice's :class:`~harmonia.model.ServiceSpec`, whose placement requests the root's
scheduler places. Specs are rebuilt from the whole application whenever it changes
(a service added, the application renamed), because connectivity constraints name other
microservices of the same application.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harmonia.control.protocol import InstanceSpec, RestartPolicy, Runtime
from harmonia.model import FieldError, InputError, PlacementRequest, ServiceSpec, parse_sla
from harmonia.model.sla import Microservice, Virtualization

SLA_VERSION = "v2.0"
CONTAINER_KINDS = (Virtualization.CONTAINER, Virtualization.OCI)
ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class RunSpec(BaseModel):
    """How a node runs each instance of a service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runtime: Runtime
    cmd: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    image: str = ""
    restart: RestartPolicy = RestartPolicy.ON_FAILURE


class StoredSpec(BaseModel):
    """What a service row keeps in its ``spec`` column."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: ServiceSpec
    run: RunSpec

    def request(self, instance_id: str, number: int) -> PlacementRequest:
        """The placement request of instance ``number`` (numbers may pass ``replicas``:
        they are never reused, see the services table)."""
        spec = self.service
        if number >= spec.replicas:
            spec = spec.model_copy(update={"replicas": number + 1})
        return spec.request(number).model_copy(update={"id": instance_id})


@dataclass
class ServiceDraft:
    name: str
    microservice: dict[str, Any]  # as given
    stored: StoredSpec
    replicas: int
    model: Microservice


@dataclass
class ApplicationDraft:
    name: str
    namespace: str
    description: str
    sla: dict[str, Any]  # the application as given, without its microservices
    services: list[ServiceDraft] = field(default_factory=list)


def drafts_from_descriptor(data: object) -> list[ApplicationDraft]:
    """Validate a whole descriptor and turn it into drafts; InputError lists every problem."""
    descriptor = parse_sla(data)
    errors = _runnable_errors(descriptor.applications, "applications[{a}].microservices[{m}]")
    if errors:
        raise InputError(errors)
    specs = descriptor.to_services()  # raises InputError for what cannot be scheduled
    assert isinstance(data, dict)  # parse_sla accepted it
    drafts: list[ApplicationDraft] = []
    position = 0
    for raw_app, app in zip(data["applications"], descriptor.applications, strict=True):
        draft = ApplicationDraft(
            name=app.application_name,
            namespace=app.application_namespace,
            description=app.application_desc,
            sla=_without_microservices(raw_app),
        )
        for raw_ms, ms in zip(raw_app["microservices"], app.microservices, strict=True):
            draft.services.append(
                ServiceDraft(
                    name=ms.microservice_name,
                    microservice=copy.deepcopy(raw_ms),
                    stored=StoredSpec(service=specs[position], run=run_spec(ms)),
                    replicas=ms.replicas,
                    model=ms,
                )
            )
            position += 1
        drafts.append(draft)
    return drafts


def application_draft(
    sla: dict[str, Any], microservices: list[dict[str, Any]], *, owner: str
) -> ApplicationDraft:
    """Re-validate one stored application with ``microservices`` (existing ones and any
    new one) and rebuild every service's spec. Error paths read ``applications[0]...``;
    callers rewrite them for their own request body with :func:`rename_paths`."""
    app = dict(sla)
    app["microservices"] = microservices
    document = {"sla_version": SLA_VERSION, "customerID": owner, "applications": [app]}
    drafts = drafts_from_descriptor(document)
    return drafts[0]


def rename_paths(error: InputError, renames: dict[str, str]) -> InputError:
    """The same problems with path prefixes replaced (longest first)."""
    ordered = sorted(renames.items(), key=lambda item: -len(item[0]))
    fixed = []
    for problem in error.errors:
        path = problem.path
        for old, new in ordered:
            if path == old or path.startswith((old + ".", old + "[")):
                path = new + path[len(old) :]
                break
        fixed.append(FieldError(path, problem.message))
    return InputError(fixed, error.source)


def run_spec(ms: Microservice) -> RunSpec:
    """How to run ``ms`` (already checked by :func:`_runnable_errors`)."""
    env = dict(entry.split("=", 1) for entry in ms.environment)
    restart = RestartPolicy.NEVER if ms.one_shot else RestartPolicy.ON_FAILURE
    if ms.virtualization in CONTAINER_KINDS and _is_local_path(ms.code):
        return RunSpec(
            runtime=Runtime.OCI, cmd=(*ms.cmd, *ms.args), env=env, image=ms.code, restart=restart
        )
    return RunSpec(runtime=Runtime.PROCESS, cmd=(*ms.cmd, *ms.args), env=env, restart=restart)


def instance_spec(
    stored: StoredSpec,
    *,
    instance_id: str,
    service_id: str,
    application_id: str,
    service_key: str,
    number: int,
    max_restarts: int = 5,
) -> InstanceSpec:
    """The message that asks a cluster to place and run one instance."""
    run = stored.run
    return InstanceSpec(
        instance_id=instance_id,
        service_id=service_id,
        application_id=application_id,
        service=service_key,
        number=number,
        runtime=run.runtime,
        cmd=run.cmd,
        env=dict(run.env),
        image=run.image,
        restart=run.restart,
        max_restarts=max_restarts,
        request=stored.request(instance_id, number),
    )


def _runnable_errors(apps: Any, template: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for a, app in enumerate(apps):
        for m, ms in enumerate(app.microservices):
            at = template.format(a=a, m=m)
            errors.extend(_microservice_errors(ms, at))
    return errors


def _microservice_errors(ms: Microservice, at: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if ms.virtualization not in (*CONTAINER_KINDS, Virtualization.PROCESS):
        errors.append(
            FieldError(
                f"{at}.virtualization",
                f"{ms.virtualization.value} cannot run here; use process, container or oci",
            )
        )
    container = ms.virtualization in CONTAINER_KINDS and _is_local_path(ms.code)
    if not ms.cmd or not any(part.strip() for part in ms.cmd[:1]):
        why = (
            "needs the command to start inside the container (an argv list)"
            if container
            else "needs a command to run (an argv list): images are never pulled; "
            "a container needs an absolute local path in code"
        )
        errors.append(FieldError(f"{at}.cmd", why))
    if any("\x00" in part for part in (*ms.cmd, *ms.args)):
        errors.append(FieldError(f"{at}.cmd", "must not contain NUL characters"))
    for e, entry in enumerate(ms.environment):
        name, equals, _ = entry.partition("=")
        if not equals or not name or not set(name) <= ENV_NAME_CHARS or name[0].isdigit():
            errors.append(
                FieldError(f"{at}.environment[{e}]", "must be NAME=VALUE with NAME in [A-Za-z0-9_]")
            )
        elif "\x00" in entry:
            errors.append(FieldError(f"{at}.environment[{e}]", "must not contain NUL characters"))
    return errors


def _is_local_path(code: str) -> bool:
    return PurePosixPath(code).is_absolute() and "\x00" not in code


def _without_microservices(app: dict[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(value) for key, value in app.items() if key != "microservices"}


__all__ = [
    "SLA_VERSION",
    "ApplicationDraft",
    "RunSpec",
    "ServiceDraft",
    "StoredSpec",
    "application_draft",
    "drafts_from_descriptor",
    "instance_spec",
    "rename_paths",
    "run_spec",
]
