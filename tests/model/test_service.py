"""ServiceSpec expands into one placement request per replica; Instance names itself."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harmonia.model import (
    AntiAffinityConstraint,
    Instance,
    InstanceState,
    QoSClass,
    Resources,
    ServiceSpec,
)


def make_service(**fields: object) -> ServiceSpec:
    defaults: dict[str, object] = {
        "name": "web",
        "application": "shop",
        "qos_class": QoSClass.LC,
        "resources": Resources(cpu_m=250, memory_mib=128, gpu=1),
        "replicas": 3,
        "slo_ms": 50.0,
        "labels": {"tier": "front"},
        "constraints": (AntiAffinityConstraint(),),
    }
    defaults.update(fields)
    return ServiceSpec.model_validate(defaults)


def test_key_qualifies_the_name_with_the_application() -> None:
    assert make_service().key == "shop.web"
    assert make_service(application="").key == "web"


def test_requests_carry_everything_of_the_service_one_per_replica() -> None:
    requests = make_service().requests()

    assert [r.id for r in requests] == ["shop.web.0", "shop.web.1", "shop.web.2"]
    for request in requests:
        assert request.service == "shop.web"
        assert request.application == "shop"
        assert request.qos_class is QoSClass.LC
        assert (request.cpu_m, request.memory_mib, request.gpu) == (250, 128, 1)
        assert request.labels == {"tier": "front"}
        assert request.constraints == (AntiAffinityConstraint(),)
    # each request owns its labels
    requests[0].labels["x"] = "y"
    assert "x" not in requests[1].labels


def test_request_index_outside_the_replicas_is_an_error() -> None:
    with pytest.raises(IndexError, match=r"shop.web has instances 0..2, not 3"):
        make_service().request(3)


@pytest.mark.parametrize(
    ("field", "value"),
    [("replicas", 0), ("slo_ms", 0), ("name", ""), ("colour", "red")],
)
def test_invalid_service_fields_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        make_service(**{field: value})


def test_instance_id_and_default_state() -> None:
    instance = Instance(service="shop.web", index=2)
    assert instance.id == "shop.web.2"
    assert instance.state is InstanceState.REQUESTED
    assert instance.node is None
