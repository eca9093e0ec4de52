"""SLA descriptor v2: Oakestra compatibility, conversion to placement requests, and
validation errors that name the field at fault."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from harmonia.model import (
    AntiAffinityConstraint,
    DirectConstraint,
    GeoConstraint,
    GeoPoint,
    InputError,
    LatencyConstraint,
    NodeAffinityConstraint,
    QoSClass,
    SLADescriptor,
    parse_sla,
    parse_sla_text,
)
from harmonia.model.sla import PortMapping, Virtualization, parse_ports

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sla"
OAKESTRA_TEXT = (FIXTURES / "oakestra-clientsrvr.json").read_text()
NGINX = "applications[0].microservices[1]"


def oakestra() -> dict[str, Any]:
    """A fresh copy of Oakestra's own example (application clientsrvr: curl + nginx)."""
    data: dict[str, Any] = json.loads(OAKESTRA_TEXT)
    return data


def make_ms(name: str = "web", **fields: Any) -> dict[str, Any]:
    ms = {
        "microservice_name": name,
        "microservice_namespace": "ns",
        "virtualization": "container",
        "memory": 64,
        "vcpus": 0.5,
        "code": "docker.io/library/nginx:latest",
    }
    return {**ms, **fields}


def make_sla(*services: dict[str, Any], app: str = "app") -> dict[str, Any]:
    return {
        "sla_version": "v2.0",
        "customerID": "c",
        "applications": [
            {
                "application_name": app,
                "application_namespace": "ns",
                "microservices": list(services) or [make_ms()],
            }
        ],
    }


def errors_of(data: object) -> list[str]:
    with pytest.raises(InputError) as caught:
        parse_sla(data)
    return [str(error) for error in caught.value.errors]


def is_subset(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and is_subset(v, whole[k]) for k, v in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(is_subset(p, w) for p, w in zip(part, whole, strict=True))
        )
    return bool(part == whole)


# --- Oakestra's example ---------------------------------------------------------------


def test_oakestra_example_parses_unchanged_into_two_requests() -> None:
    descriptor = parse_sla_text(OAKESTRA_TEXT, source="oakestra-clientsrvr.json")

    requests = descriptor.to_requests()

    assert [r.id for r in requests] == ["clientsrvr.curl.0", "clientsrvr.nginx.0"]
    assert [r.service for r in requests] == ["clientsrvr.curl", "clientsrvr.nginx"]
    assert {r.application for r in requests} == {"clientsrvr"}
    assert all(r.cpu_m == 1000 and r.memory_mib == 100 for r in requests)  # vcpus 1 -> 1000m
    assert all(r.gpu == 0 and r.storage_mib == 0 and r.constraints == () for r in requests)
    assert all(r.qos_class is QoSClass.BE for r in requests)  # no slo_ms, no qos_class
    assert requests[0].labels == {"harmonia.io/app": "clientsrvr", "harmonia.io/namespace": "test"}
    server = descriptor.applications[0].microservices[1]
    assert server.addresses is not None and server.addresses.rr_ip == "10.30.30.30"
    assert server.ports == (PortMapping(6080, 60, "tcp"),)
    assert server.cmd == () and descriptor.applications[0].microservices[0].cmd[0] == "sh"


def test_oakestra_example_serializes_back_to_its_own_shape() -> None:
    descriptor = parse_sla(oakestra())

    stored = descriptor.to_dict()

    assert is_subset(oakestra(), stored)  # every field the user wrote, with its value
    assert json.loads(json.dumps(stored)) == stored  # plain JSON
    assert parse_sla(stored) == descriptor


# --- YAML, units, replicas, QoS, constraints -----------------------------------------


def test_yaml_descriptor_expands_replicas_and_converts_everything() -> None:
    descriptor = parse_sla_text((FIXTURES / "edge-video.yaml").read_text(), "edge-video.yaml")

    requests = {r.id: r for r in descriptor.to_requests()}

    # camera x2 + detector x1 + archive x3
    assert list(requests) == [
        "video.camera.0",
        "video.camera.1",
        "video.detector.0",
        "video.archive.0",
        "video.archive.1",
        "video.archive.2",
    ]
    camera, detector, archive = (
        requests[f"video.{s}.0"] for s in ("camera", "detector", "archive")
    )
    assert (camera.cpu_m, detector.cpu_m, archive.cpu_m) == (500, 2000, 100)
    assert (detector.gpu, detector.bandwidth_in_kbps, detector.storage_mib) == (1, 5000, 1024)
    assert camera.constraints == (
        DirectConstraint(nodes=("edge1", "edge2"), cluster="munich"),
        AntiAffinityConstraint(scope="node"),
    )
    assert detector.constraints == (
        LatencyConstraint(threshold_ms=20, area="munich"),
        GeoConstraint(location=GeoPoint(lat=48.13, long=11.57), threshold_km=100),
        NodeAffinityConstraint(match_labels={"accelerator": "jetson"}),
        LatencyConstraint(threshold_ms=10, target="video.camera"),  # from connectivity
    )
    assert detector.qos_class is QoSClass.LC  # slo_ms given, no qos_class
    assert detector.labels["harmonia.io/slo-ms"] == "50"
    assert camera.qos_class is QoSClass.BE and archive.qos_class is QoSClass.BE
    services = descriptor.applications[0].microservices
    assert services[0].port == "22:22"  # not YAML 1.1's base-60 integer 1342
    assert services[1].virtualization is Virtualization.CONTAINER  # "Container"
    assert services[1].ports == (PortMapping(8080, 80, "tcp"), PortMapping(9090, 9090, "udp"))


@pytest.mark.parametrize(
    ("vcpus", "cpu_m"),
    [(0.1, 100), (0.25, 250), (1, 1000), (1.5, 1500), (0.001, 1), (0.1234, 123), (64, 64000)],
)
def test_vcpus_become_millicores(vcpus: float, cpu_m: int) -> None:
    (request,) = parse_sla(make_sla(make_ms(vcpus=vcpus))).to_requests()
    assert request.cpu_m == cpu_m


def test_replicas_are_numbered_from_zero_and_otherwise_equal() -> None:
    requests = parse_sla(make_sla(make_ms("db", replicas=3, memory=300))).to_requests()

    assert [r.id for r in requests] == ["app.db.0", "app.db.1", "app.db.2"]
    assert all(
        r.model_dump(exclude={"id"}) == requests[0].model_dump(exclude={"id"}) for r in requests
    )
    requests[1].labels["x"] = "y"
    assert "x" not in requests[2].labels  # each request owns its labels


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, QoSClass.BE),
        ({"slo_ms": 50}, QoSClass.LC),
        ({"slo_ms": 50, "qos_class": "FUNCTION"}, QoSClass.FUNCTION),
        ({"qos_class": "LRA"}, QoSClass.LRA),
    ],
)
def test_qos_class_defaults_to_lc_with_an_slo_else_be(
    fields: dict[str, Any], expected: QoSClass
) -> None:
    (request,) = parse_sla(make_sla(make_ms(**fields))).to_requests()
    assert request.qos_class is expected


def test_connectivity_by_microservice_id_targets_that_service() -> None:
    data = make_sla(
        make_ms("a", microserviceID="id-a"),
        make_ms(
            "b",
            connectivity=[
                {
                    "target_microservice_id": "id-a",
                    "con_constraints": [{"type": "latency", "threshold": 5}],
                }
            ],
        ),
    )
    b = parse_sla(data).to_requests()[1]
    assert b.constraints == (LatencyConstraint(threshold_ms=5, target="app.a"),)


def test_latency_constraint_to_a_location_becomes_a_geo_point() -> None:
    constraint = {"type": "latency", "location": "-33.9, 151.2", "threshold": 30}
    (request,) = parse_sla(make_sla(make_ms(constraints=[constraint]))).to_requests()
    assert request.constraints == (
        LatencyConstraint(threshold_ms=30, location=GeoPoint(lat=-33.9, long=151.2)),
    )


def test_what_cannot_be_scheduled_is_refused_not_dropped() -> None:
    data = make_sla(
        make_ms("a", vtpus=1),
        make_ms(
            "b",
            connectivity=[
                {
                    "target_microservice_name": "a",
                    "con_constraints": [{"type": "geo", "threshold": 5}],
                }
            ],
        ),
    )
    descriptor = parse_sla(data)  # valid Oakestra
    with pytest.raises(InputError) as caught:
        descriptor.to_requests()
    assert [str(e) for e in caught.value.errors] == [
        "applications[0].microservices[0].vtpus: TPUs are not schedulable yet",
        "applications[0].microservices[1].connectivity[0].con_constraints[0]: "
        "geo connectivity between microservices is not schedulable yet",
    ]


def test_parse_ports() -> None:
    assert parse_ports("") == ()
    assert parse_ports("80:8080;90") == (PortMapping(80, 8080, "tcp"), PortMapping(90, 90, "tcp"))
    assert parse_ports("53/udp") == (PortMapping(53, 53, "udp"),)


# --- validation errors -------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], object]


def nginx(**fields: Any) -> Mutation:
    return lambda d: d["applications"][0]["microservices"][1].update(fields)


def nginx_without(key: str) -> Mutation:
    return lambda d: d["applications"][0]["microservices"][1].pop(key)


def app(**fields: Any) -> Mutation:
    return lambda d: d["applications"][0].update(fields)


def constraint(**fields: Any) -> Mutation:
    return nginx(constraints=[fields])


def geo(**fields: Any) -> Mutation:
    return constraint(**{"type": "geo", "location": "48.13,11.57", "threshold": 10, **fields})


def link(**fields: Any) -> Mutation:
    return nginx(connectivity=[fields])


LATENCY_5 = [{"type": "latency", "threshold": 5}]
CONSTRAINT_TYPES = "'direct', 'latency', 'geo', 'node_affinity', 'anti_affinity'"
VIRTUALIZATIONS = "'container', 'oci', 'unikernel', 'vm' or 'process'"
PORT_RULE = "expected PORT[:PORT][/tcp|udp] entries separated by ';'"
NAME_RULE = "must be 1-10 letters or digits"
IPV4_RULE = "must be an IPv4 address, e.g. 10.30.30.30"
LOCATION_RULE = "must be 'lat,long' in degrees, e.g. '48.13,11.57'"

# (mutation of Oakestra's example, path of the error, rule); a path starting with "."
# is relative to the nginx microservice, applications[0].microservices[1].
INVALID: list[tuple[Mutation, str, str]] = [
    (nginx(memory=0), ".memory", "must be > 0"),
    (nginx(memory=1.5), ".memory", "must be an integer"),
    (nginx_without("memory"), ".memory", "is required"),
    (nginx_without("code"), ".code", "is required"),
    (nginx(vcpus=0), ".vcpus", "must be > 0"),
    (nginx(vcpus="1"), ".vcpus", "must be a number"),
    (nginx(vcpus=True), ".vcpus", "must be a number"),
    (nginx(vcpus=float("inf")), ".vcpus", "must be a finite number"),
    (nginx(vcpus=0.0001), ".vcpus", "must be at least 0.001 (1 millicore)"),
    (nginx(vgpus=-1), ".vgpus", "must be >= 0"),
    (nginx(bandwidth_in=-5), ".bandwidth_in", "must be >= 0"),
    (nginx(replicas=0), ".replicas", "must be >= 1"),
    (nginx(slo_ms=-1), ".slo_ms", "must be > 0"),
    (nginx(cmd="nginx -g"), ".cmd", "must be a list"),
    (nginx(microservice_name="abcdefghijk"), ".microservice_name", NAME_RULE),
    (nginx(microservice_name="web-1"), ".microservice_name", NAME_RULE),
    (nginx(microservice_namespace=""), ".microservice_namespace", NAME_RULE),
    (app(application_name="client_srv"), "applications[0].application_name", NAME_RULE),
    (nginx(memroy=100), ".memroy", "unknown field"),
    (lambda d: d.update(owner="x"), "owner", "unknown field"),
    (nginx(addresses={"rr": "1.2.3.4"}), ".addresses.rr", "unknown field"),
    (nginx(virtualization="docker"), ".virtualization", f"must be one of {VIRTUALIZATIONS}"),
    (nginx(port="70000"), ".port", "port 70000 is out of range 1..65535"),
    (nginx(port="80:0"), ".port", "port 0 is out of range 1..65535"),
    (nginx(port="80/sctp"), ".port", f"invalid port entry '80/sctp'; {PORT_RULE}"),
    (nginx(port="80;"), ".port", f"invalid port entry ''; {PORT_RULE}"),
    (nginx(port=80), ".port", "must be a string"),
    (nginx(addresses={"rr_ip": "10.30.30.300"}), ".addresses.rr_ip", IPV4_RULE),
    (geo(location="48.13;11.57"), ".constraints[0].location", LOCATION_RULE),
    (geo(location="91,11"), ".constraints[0].location", "latitude must be in -90..90"),
    (geo(location="48,-181"), ".constraints[0].location", "longitude must be in -180..180"),
    (geo(threshold=0), ".constraints[0].threshold", "must be > 0"),
    (
        constraint(type="bandwidth"),
        ".constraints[0]",
        f"unknown type 'bandwidth'; expected one of {CONSTRAINT_TYPES}",
    ),
    (constraint(area="munich"), ".constraints[0]", "needs a type field"),
    (
        constraint(type="direct", node=" ; "),
        ".constraints[0]",
        "direct constraint needs a cluster or a node list",
    ),
    (
        constraint(type="latency", threshold=10),
        ".constraints[0]",
        "latency constraint needs an area, a target or a location",
    ),
    (
        constraint(type="latency", area="x", threshold=10, rigidness=1.5),
        ".constraints[0].rigidness",
        "must be in 0..1",
    ),
    (
        nginx(microservice_name="curl"),
        ".microservice_name",
        "duplicate microservice_name 'curl' (also applications[0].microservices[0])",
    ),
    (
        lambda d: d["applications"].append(copy.deepcopy(d["applications"][0])),
        "applications[1].application_name",
        "duplicate application_name 'clientsrvr' (also applications[0])",
    ),
    (
        link(target_microservice_name="redis", con_constraints=LATENCY_5),
        ".connectivity[0].target_microservice_name",
        "no microservice 'redis' in this application",
    ),
    (
        link(target_microservice_name="nginx", con_constraints=LATENCY_5),
        ".connectivity[0].target_microservice_name",
        "must not be the microservice itself",
    ),
    (
        link(con_constraints=LATENCY_5),
        ".connectivity[0]",
        "needs target_microservice_name or target_microservice_id",
    ),
    (
        link(
            target_microservice_name="curl", con_constraints=[{"type": "latency", "threshold": -1}]
        ),
        ".connectivity[0].con_constraints[0].threshold",
        "must be > 0",
    ),
    (
        lambda d: d.update(sla_version="v1.0"),
        "sla_version",
        "unsupported SLA version 'v1.0'; expected v2.x",
    ),
    (lambda d: d.pop("customerID"), "customerID", "is required"),
    (lambda d: d.update(applications=[]), "applications", "must have at least 1 item"),
    (app(microservices=[]), "applications[0].microservices", "must have at least 1 item"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "rule"), INVALID, ids=[f"{path} {rule}"[:60] for _, path, rule in INVALID]
)
def test_invalid_descriptor_names_path_and_rule(mutate: Mutation, path: str, rule: str) -> None:
    data = oakestra()
    mutate(data)
    assert errors_of(data) == [f"{NGINX if path.startswith('.') else ''}{path}: {rule}"]


def test_all_errors_are_reported_at_once() -> None:
    data = oakestra()
    nginx(memory=0, port="x", microservice_name="curl")(data)
    data["applications"][0]["microservices"][0]["vcpus"] = -2

    assert errors_of(data) == [
        "applications[0].microservices[0].vcpus: must be > 0",
        f"{NGINX}.memory: must be > 0",
        f"{NGINX}.port: invalid port entry 'x'; {PORT_RULE}",
        f"{NGINX}.microservice_name: duplicate microservice_name 'curl' "
        "(also applications[0].microservices[0])",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must be an object (got list)"),
        (None, "must be an object (empty document)"),
        ("x", "must be an object (got str)"),
    ],
)
def test_top_level_must_be_an_object(data: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_sla(data, source="sla.json")
    assert caught.value.errors[0].path == ""
    assert [str(e) for e in caught.value.errors] == [message]
    assert str(caught.value).startswith("sla.json: 1 validation error")


def test_direct_model_validation_also_checks_references() -> None:
    data = oakestra()
    nginx(microservice_name="curl")(data)
    with pytest.raises(ValidationError, match="duplicate microservice_name 'curl'"):
        SLADescriptor.model_validate(data)


# --- text: JSON and YAML ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sla_version: v2.0\napplications: [1, 2\ncustomerID: x\n",
            "invalid YAML at line 3, column 11:",
        ),
        (
            '{\n  "sla_version": "v2.0",\n  "customerID" "x"\n}',
            "invalid JSON at line 3, column 16:",
        ),
        ("a: &x [1]\nb: *x\n", "invalid YAML at line 2, column 4: aliases (*name) are not allowed"),
        ("a: 1\n---\nb: 2\n", "invalid YAML at line 2, column 1:"),
    ],
)
def test_syntax_errors_name_line_and_column(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_sla_text(text, source="sla.yaml")
    (error,) = caught.value.errors
    assert error.path == "" and error.message.startswith(message)
    assert str(caught.value).startswith("sla.yaml: 1 validation error")


def test_json_with_tab_indentation_parses() -> None:
    text = json.dumps(oakestra(), indent="\t")
    assert parse_sla_text(text) == parse_sla(oakestra())


def test_yaml_and_json_of_the_same_descriptor_agree() -> None:
    assert parse_sla_text(yaml.safe_dump(oakestra())) == parse_sla_text(OAKESTRA_TEXT)


def test_empty_text_is_an_input_error() -> None:
    with pytest.raises(InputError, match="empty document"):
        parse_sla_text("   \n")


# --- properties ---------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z0-9]{1,10}", fullmatch=True)
CONSTRAINTS = st.sampled_from(
    [
        {"type": "direct", "node": "n1;n2"},
        {"type": "direct", "cluster": "c1"},
        {
            "type": "latency",
            "area": "munich",
            "threshold": 100,
            "rigidness": 0.99,
            "convergence_time": 300,
        },
        {"type": "latency", "location": "48.1,11.5", "threshold": 5.5},
        {"type": "geo", "location": "-33.9,151.2", "threshold": 100},
        {"type": "node_affinity", "match_labels": {"zone": "a"}},
        {"type": "anti_affinity", "scope": "cluster", "max_per_domain": 2},
    ]
)


@st.composite
def applications(draw: st.DrawFn, name: str) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    services = []
    for ms_name in names:
        others = [n for n in names if n != ms_name]
        links = draw(st.lists(st.sampled_from(others), max_size=2)) if others else []
        ms = make_ms(
            ms_name,
            microservice_namespace=draw(NAMES),
            virtualization=draw(
                st.sampled_from(["container", "Unikernel", "process", "oci", "vm"])
            ),
            memory=draw(st.integers(1, 1 << 20)),
            vcpus=draw(st.one_of(st.integers(1, 64), st.floats(0.001, 64))),
            vgpus=draw(st.integers(0, 4)),
            bandwidth_out=draw(st.integers(0, 10**6)),
            replicas=draw(st.integers(1, 4)),
            port=draw(st.sampled_from(["", "80", "6080:60/tcp", "80:8080;90/udp"])),
            constraints=draw(st.lists(CONSTRAINTS, max_size=3)),
            connectivity=[
                {
                    "target_microservice_name": t,
                    "con_constraints": [{"type": "latency", "threshold": 10}],
                }
                for t in links
            ],
        )
        if draw(st.booleans()):
            ms["slo_ms"] = draw(st.floats(0.1, 1000))
        services.append(ms)
    return {
        "application_name": name,
        "application_namespace": draw(NAMES),
        "microservices": services,
    }


@st.composite
def descriptors(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    return {
        "sla_version": draw(st.sampled_from(["v2.0", "v2", "2.1"])),
        "customerID": draw(st.text(max_size=5)),
        "applications": [draw(applications(name)) for name in names],
    }


@settings(deadline=None, max_examples=150)
@given(descriptors())
def test_any_valid_descriptor_parses_and_expands_to_one_request_per_replica(
    data: dict[str, Any],
) -> None:
    descriptor = parse_sla(data)

    requests = descriptor.to_requests()

    services = [ms for app in data["applications"] for ms in app["microservices"]]
    assert len(requests) == sum(ms["replicas"] for ms in services)
    assert len({r.id for r in requests}) == len(requests)
    by_service = {(r.application, r.service): r for r in requests}
    for app in data["applications"]:
        for ms in app["microservices"]:
            key = f"{app['application_name']}.{ms['microservice_name']}"
            request = by_service[(app["application_name"], key)]
            assert request.cpu_m == round(ms["vcpus"] * 1000) >= 1
            assert request.memory_mib == ms["memory"]
            assert len(request.constraints) == len(ms["constraints"]) + len(ms["connectivity"])
    assert parse_sla(descriptor.to_dict()) == descriptor


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def parse_or_input_error(data: object) -> None:
    try:
        parse_sla(data)
    except InputError as exc:
        assert exc.errors and all(isinstance(e.message, str) and e.message for e in exc.errors)


@settings(deadline=None, max_examples=200)
@given(JSON_VALUES)
def test_garbage_never_raises_anything_but_input_error(data: object) -> None:
    parse_or_input_error(data)


@settings(deadline=None, max_examples=100)
@given(descriptors(), st.data())
def test_a_valid_descriptor_with_one_value_replaced_fails_only_with_input_error(
    data: dict[str, Any], draws: st.DataObject
) -> None:
    node: Any = data
    while True:  # walk down to a random container, then replace one of its values
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        key = draws.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draws.draw(st.booleans()):
            node = child
            continue
        node[key] = draws.draw(JSON_VALUES)
        break
    parse_or_input_error(data)


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=200))
def test_any_text_parses_or_fails_with_input_error(text: str) -> None:
    try:
        parse_sla_text(text)
    except InputError as exc:
        assert exc.errors
