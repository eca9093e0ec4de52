"""Rows of the store as API objects (:mod:`harmonia.control.root.schemas`)."""

from __future__ import annotations

from harmonia.control.root.descriptors import StoredSpec
from harmonia.control.root.schemas import (
    ApplicationOut,
    InstanceOut,
    ServiceOut,
)
from harmonia.control.root.store import ApplicationRow, InstanceRow, ServiceRow
from harmonia.model import InstanceState


def application_out(app: ApplicationRow, service_ids: list[str]) -> ApplicationOut:
    return ApplicationOut(
        applicationID=app.id,
        application_name=app.name,
        application_namespace=app.namespace,
        application_desc=app.description,
        userId=app.owner,
        microservices=service_ids,
    )


def instance_out(
    instance: InstanceRow,
    service: ServiceRow,
    app: ApplicationRow,
    cluster_names: dict[str, str],
) -> InstanceOut:
    cluster_id = instance.cluster_id
    return InstanceOut(
        instance_id=instance.id,
        service_id=service.id,
        service=f"{app.name}.{service.name}",
        application_id=app.id,
        application=app.name,
        number=instance.number,
        cluster=cluster_names.get(cluster_id) if cluster_id else None,
        cluster_id=cluster_id,
        node=instance.node,
        state=InstanceState(instance.state),
        pid=instance.pid,
        restarts=instance.restarts,
        started_at=instance.started_at,
        updated_at=instance.updated_at,
        detail=instance.detail,
    )


def service_out(
    service: ServiceRow,
    app: ApplicationRow,
    instances: list[InstanceRow],
    cluster_names: dict[str, str],
) -> ServiceOut:
    stored = StoredSpec.model_validate(service.spec)
    resources = stored.service.resources
    raw = service.microservice
    return ServiceOut(
        microserviceID=service.id,
        applicationID=app.id,
        microservice_name=service.name,
        microservice_namespace=str(raw.get("microservice_namespace", "")),
        virtualization=str(raw.get("virtualization", "")).strip().lower(),
        cmd=list(stored.run.cmd),
        memory=resources.memory_mib,
        vcpus=resources.cpu_m / 1000,
        replicas=service.replicas,
        instance_list=[
            instance_out(i, service, app, cluster_names)
            for i in sorted(instances, key=lambda row: row.number)
        ],
    )


__all__ = ["application_out", "instance_out", "service_out"]
