"""Decoding of user documents: node lists, request lists, SLA detection, JSON/YAML text.

Every problem is reported at once with its JSON path; list-form documents have paths
like ``[1].name``, object-form ones ``nodes[1].name`` / ``requests[1].id``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harmonia.model import (
    DirectConstraint,
    InputError,
    NodeAffinityConstraint,
    NodeRole,
    QoSClass,
)
from harmonia.model.documents import (
    NodeList,
    is_sla_descriptor,
    load_document,
    parse_nodes,
    parse_requests,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
CLI_FIXTURES = FIXTURES / "cli"
OAKESTRA = FIXTURES / "sla" / "oakestra-clientsrvr.json"


def node(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "capacity": {"cpu_m": 1000, "memory_mib": 1024}, **fields}


def errors_of(fn: Any, *args: Any) -> list[str]:
    with pytest.raises(InputError) as info:
        fn(*args)
    return [str(e) for e in info.value.errors]


def load_fixture(name: str) -> object:
    return load_document((CLI_FIXTURES / name).read_text(encoding="utf-8"), name)


# --- parse_nodes --------------------------------------------------------------------------


def test_parse_nodes_list_form() -> None:
    result = parse_nodes([node("n1"), node("n2", cluster="edge", role="edge")])

    assert isinstance(result, NodeList)
    assert [n.name for n in result.nodes] == ["n1", "n2"]
    assert result.nodes[0].cluster == "default"
    assert result.nodes[1].role is NodeRole.EDGE
    assert result.clusters == []


def test_parse_nodes_object_form_with_clusters() -> None:
    data = {
        "clusters": [{"name": "a", "location": {"lat": 48.1, "long": 11.6}}, {"name": "b"}],
        "nodes": [node("n1", cluster="a"), node("n2", cluster="b")],
    }
    result = parse_nodes(data)

    assert [c.name for c in result.clusters] == ["a", "b"]
    assert result.clusters[0].location is not None
    assert [n.cluster for n in result.nodes] == ["a", "b"]


def test_parse_nodes_object_form_without_clusters_accepts_any_cluster() -> None:
    result = parse_nodes({"nodes": [node("n1", cluster="anywhere")]})
    assert result.clusters == []
    assert result.nodes[0].cluster == "anywhere"


@pytest.mark.parametrize("name", ["tiny-nodes.yaml", "tiny-nodes.json"])
def test_parse_nodes_fixtures(name: str) -> None:
    result = parse_nodes(load_fixture(name), name)
    assert [n.name for n in result.nodes] == ["n1", "n2", "n3"]
    assert result.nodes[0].labels == {"zone": "a", "disk": "ssd"}
    assert result.nodes[2].capacity.cpu_m == 4000


def test_unknown_cluster_is_reported_at_the_node() -> None:
    data = {
        "clusters": [{"name": "a"}],
        "nodes": [node("n1", cluster="a"), node("n2", cluster="b"), node("n3", cluster="c")],
    }
    assert errors_of(parse_nodes, data) == [
        "nodes[1].cluster: unknown cluster 'b'",
        "nodes[2].cluster: unknown cluster 'c'",
    ]


def test_unknown_top_level_keys_are_all_reported() -> None:
    data = {"nodes": [node("n1")], "zones": [], "clsuters": []}
    assert errors_of(parse_nodes, data) == ["clsuters: unknown field", "zones: unknown field"]


def test_object_form_needs_nodes() -> None:
    assert errors_of(parse_nodes, {"clusters": [{"name": "a"}]}) == ["nodes: is required"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "must list at least one node"),
        ({"nodes": []}, "nodes: must list at least one node"),
        ({"nodes": [], "clusters": [{"name": "a"}]}, "nodes: must list at least one node"),
        (None, "must be a list of nodes or an object (empty document)"),
        ("n1", "must be a list of nodes or an object (got str)"),
        (42, "must be a list of nodes or an object (got int)"),
    ],
)
def test_empty_or_malformed_node_lists(data: object, expected: str) -> None:
    assert errors_of(parse_nodes, data) == [expected]


def test_duplicate_node_names_name_the_later_one() -> None:
    assert errors_of(parse_nodes, [node("n1"), node("n2"), node("n1"), node("n1")]) == [
        "[2].name: duplicate node name 'n1'",
        "[3].name: duplicate node name 'n1'",
    ]
    assert errors_of(parse_nodes, {"nodes": [node("x"), node("x")]}) == [
        "nodes[1].name: duplicate node name 'x'"
    ]


def test_node_field_errors_carry_the_document_prefix() -> None:
    bad = {"name": "-bad-", "capacity": {"cpu_m": -1}, "colour": "red"}
    listed = errors_of(parse_nodes, [node("n1"), bad])
    wrapped = errors_of(parse_nodes, {"nodes": [node("n1"), bad]})

    assert sorted(listed) == sorted(
        [
            "[1].name: must match ^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$",
            "[1].capacity.cpu_m: must be >= 0",
            "[1].colour: unknown field",
        ]
    )
    assert sorted(wrapped) == sorted("nodes" + e for e in listed)


def test_node_and_cluster_errors_are_reported_together() -> None:
    data = {"clusters": [{"name": "ok"}, {"nam": "typo"}], "nodes": [{"name": "n1"}]}
    assert sorted(errors_of(parse_nodes, data)) == [
        "clusters[1].nam: unknown field",
        "clusters[1].name: is required",
        "nodes[0].capacity: is required",
    ]


def test_duplicate_and_unknown_cluster_errors_are_reported_together() -> None:
    data = {"clusters": [{"name": "a"}], "nodes": [node("n1", cluster="a"), node("n1")]}
    assert errors_of(parse_nodes, data) == [
        "nodes[1].name: duplicate node name 'n1'",
        "nodes[1].cluster: unknown cluster 'default'",
    ]


def test_allocatable_above_capacity_is_refused() -> None:
    bad = node("n1", allocatable={"cpu_m": 2000})
    assert errors_of(parse_nodes, [bad]) == [
        "[0]: allocatable must not exceed capacity in any resource"
    ]


def test_parse_nodes_keeps_the_source() -> None:
    with pytest.raises(InputError) as info:
        parse_nodes([], "nodes.yaml")
    assert info.value.source == "nodes.yaml"
    assert str(info.value).startswith("nodes.yaml: 1 validation error")


# --- parse_requests -----------------------------------------------------------------------


def test_parse_requests_list_form() -> None:
    requests = parse_requests(
        [{"id": "a", "cpu_m": 250, "memory_mib": 128, "qos_class": "LC"}, {"id": "b"}]
    )
    assert [r.id for r in requests] == ["a", "b"]
    assert requests[0].resources.cpu_m == 250
    assert requests[0].qos_class is QoSClass.LC
    assert requests[1].qos_class is QoSClass.BE


def test_parse_requests_object_form() -> None:
    requests = parse_requests({"requests": [{"id": "a"}, {"id": "b"}]})
    assert [r.id for r in requests] == ["a", "b"]


def test_parse_requests_keeps_labels_and_constraints() -> None:
    requests = parse_requests(load_fixture("requests-constrained.json"))

    db, pinned = requests
    assert db.labels == {"tier": "data"}
    (affinity,) = db.constraints
    assert isinstance(affinity, NodeAffinityConstraint)
    assert affinity.match_labels == {"disk": "ssd"}
    assert affinity.expressions[0].values == ("a",)
    (direct,) = pinned.constraints
    assert isinstance(direct, DirectConstraint)
    assert direct.nodes == ("n2",)


def test_direct_constraint_node_list_is_split_on_semicolons() -> None:
    (request,) = parse_requests(
        [{"id": "a", "constraints": [{"type": "direct", "nodes": " n1; n2;;n3 "}]}]
    )
    (direct,) = request.constraints
    assert isinstance(direct, DirectConstraint)
    assert direct.nodes == ("n1", "n2", "n3")


def test_an_empty_request_list_is_accepted() -> None:
    assert parse_requests([]) == []
    assert parse_requests({"requests": []}) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([{"id": "a"}, {"id": "b"}, {"id": "a"}], ["[2].id: duplicate request id 'a'"]),
        (
            {"requests": [{"id": "x"}, {"id": "x"}, {"id": "x"}]},
            [
                "requests[1].id: duplicate request id 'x'",
                "requests[2].id: duplicate request id 'x'",
            ],
        ),
    ],
)
def test_duplicate_request_ids(data: object, expected: list[str]) -> None:
    assert errors_of(parse_requests, data) == expected


def test_unknown_fields_in_requests_name_their_path() -> None:
    assert errors_of(parse_requests, load_fixture("requests-unknown-field.json")) == [
        "[1].foo: unknown field"
    ]
    assert errors_of(parse_requests, {"requests": [{"id": "a", "cpus": 2}]}) == [
        "requests[0].cpus: unknown field"
    ]


def test_unknown_keys_beside_requests_are_refused() -> None:
    assert errors_of(parse_requests, {"requests": [], "version": 1, "batch": "x"}) == [
        "batch: unknown field",
        "version: unknown field",
    ]


def test_every_request_problem_is_reported() -> None:
    data = [{"id": "a", "cpu_m": -1}, {"id": ""}, {"cpu_m": 1}, {"id": "d", "gpu": 0.5}]
    assert errors_of(parse_requests, data) == [
        "[0].cpu_m: must be >= 0",
        "[1].id: must have at least 1 characters",
        "[2].id: is required",
        "[3].gpu: must be a whole number",
    ]


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        (
            {"type": "nearby"},
            "[0].constraints[0]: unknown type 'nearby'; expected one of 'direct', 'latency', "
            "'geo', 'node_affinity', 'anti_affinity'",
        ),
        ({}, "[0].constraints[0]: needs a type field"),
        (
            {"type": "direct"},
            "[0].constraints[0]: direct constraint needs a cluster or a node list",
        ),
    ],
)
def test_bad_constraints_name_their_path(constraint: dict[str, Any], expected: str) -> None:
    assert errors_of(parse_requests, [{"id": "a", "constraints": [constraint]}]) == [expected]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (None, "must be a list of requests (empty document)"),
        ({"id": "a"}, "must be a list of requests (got dict)"),
        ("a", "must be a list of requests (got str)"),
        ({"requests": {"id": "a"}}, "requests: must be a list of requests (got dict)"),
        ({"requests": None}, "requests: must be a list of requests (empty document)"),
    ],
)
def test_request_lists_of_the_wrong_shape(data: object, expected: str) -> None:
    assert errors_of(parse_requests, data) == [expected]


def test_parse_requests_keeps_the_source() -> None:
    with pytest.raises(InputError) as info:
        parse_requests([{"id": "a", "foo": 1}], "w.json")
    assert info.value.source == "w.json"


# --- is_sla_descriptor --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (json.loads(OAKESTRA.read_text(encoding="utf-8")), True),
        ({"sla_version": "v2.0"}, True),
        ({"applications": []}, True),
        ({"requests": []}, False),
        ({"nodes": []}, False),
        ({}, False),
        ([{"id": "a"}], False),
        ([{"sla_version": "v2.0"}], False),
        (None, False),
        ("sla_version", False),
    ],
)
def test_is_sla_descriptor(data: object, expected: bool) -> None:
    assert is_sla_descriptor(data) is expected


# --- load_document ------------------------------------------------------------------------


def test_load_document_reads_json_and_yaml_alike() -> None:
    assert load_document('{"a": [1, 2]}') == {"a": [1, 2]}
    assert load_document("a:\n  - 1\n  - 2\n") == {"a": [1, 2]}
    assert load_document("[1, 2]") == [1, 2]


def test_load_document_accepts_json_that_yaml_refuses() -> None:
    assert load_document('{\n\t"a": 1\n}') == {"a": 1}  # tab indentation


def test_load_document_empty_text_is_none() -> None:
    assert load_document("") is None
    assert load_document("# just a comment\n") is None


def test_load_document_keeps_colon_numbers_as_strings() -> None:
    data = load_document("port: 22:22\ntime: 1:30:00\n")
    assert data == {"port": "22:22", "time": "1:30:00"}


def test_load_document_refuses_aliases() -> None:
    assert errors_of(load_document, "a: &x [1, 2]\nb: *x\n") == [
        "invalid YAML at line 2, column 4: aliases (*name) are not allowed"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1,,}', "invalid JSON at line 1, column 9"),
        ('[\n  {"a": 1}\n  {"b": 2}\n]', "invalid JSON at line 3, column 3"),
        ("a: [1, 2\n", "invalid YAML at line 2, column 1"),
        ("a: 1\n b: 2\n", "invalid YAML at line 2, column 3"),
    ],
)
def test_load_document_syntax_errors_name_line_and_column(text: str, expected: str) -> None:
    (message,) = errors_of(load_document, text)
    assert message.startswith(expected)


def test_load_document_syntax_error_in_the_bad_fixture() -> None:
    text = (CLI_FIXTURES / "nodes-bad-syntax.yaml").read_text(encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_document(text, "nodes-bad-syntax.yaml")
    assert info.value.source == "nodes-bad-syntax.yaml"
    (error,) = info.value.errors
    assert error.path == ""
    assert error.message.startswith("invalid YAML at line 4, column 9")


def test_load_document_deep_nesting_is_an_input_error() -> None:
    assert errors_of(load_document, "[" * 100_000) == ["document is nested too deeply"]
