"""``harmonia schedule``: JSON result shape, policies, constraints, and input errors that
exit 2 with every problem and its JSON path, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.conftest import CLI_FIXTURES, OAKESTRA, POLICIES, Invoke, Run

TINY_YAML = CLI_FIXTURES / "tiny-nodes.yaml"
TINY_JSON = CLI_FIXTURES / "tiny-nodes.json"
SMALL = CLI_FIXTURES / "requests-small.json"
CONSTRAINED = CLI_FIXTURES / "requests-constrained.json"
TOO_BIG = CLI_FIXTURES / "requests-too-big.json"
UNKNOWN_FIELD = CLI_FIXTURES / "requests-unknown-field.json"
SLA_INVALID = CLI_FIXTURES / "sla-invalid.json"


def schedule(cli: Invoke, *args: object, nodes: Path = TINY_YAML, workload: Path = SMALL) -> Run:
    return cli("schedule", "--nodes", nodes, "--workload", workload, *args)


def result_json(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run.stdout)
    return data


def placed(data: dict[str, Any]) -> dict[str, str | None]:
    return {p["request"]: p["node"] for p in data["placements"]}


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- the result -------------------------------------------------------------------------


def test_oakestra_descriptor_prints_the_documented_json_to_stdout(cli: Invoke) -> None:
    run = schedule(cli, workload=OAKESTRA)

    run.assert_clean()
    assert run.code == 0
    data = result_json(run)  # stdout is exactly one JSON document
    assert data["policy"] == "default"
    assert [p["request"] for p in data["placements"]] == [
        "clientsrvr.curl.0",
        "clientsrvr.nginx.0",
    ]
    for placement in data["placements"]:
        assert set(placement) == {"request", "node", "status", "reasons"}
        assert placement["node"] in {"n1", "n2", "n3"}
        assert placement["status"] == "OK"
        assert placement["reasons"] == {"summary": [], "rejected": {}}
    stats = data["stats"]
    assert {k: stats[k] for k in ("requests", "scheduled", "unschedulable")} == {
        "requests": 2,
        "scheduled": 2,
        "unschedulable": 0,
    }
    assert isinstance(stats["seconds"], float)
    assert stats["seconds"] >= 0
    # The human summary goes to stderr, so stdout stays machine-readable.
    assert "2 scheduled, 0 unschedulable on 3 nodes with policy 'default'" in run.err
    assert "clientsrvr.curl.0" in run.err
    assert "scheduled," not in run.stdout


def test_explain_adds_feasible_counts_and_top_scores(cli: Invoke) -> None:
    run = schedule(cli, "--explain", workload=OAKESTRA)

    assert run.code == 0
    for placement in result_json(run)["placements"]:
        reasons = placement["reasons"]
        assert reasons["feasible"] == 3
        assert reasons["nodes"] == 3
        scores = reasons["top_scores"]
        assert 1 <= len(scores) <= 3
        assert all(set(s) == {"node", "total", "by_plugin"} for s in scores)
        assert scores[0]["node"] == placement["node"]  # the winner is the best score
        totals = [s["total"] for s in scores]
        assert totals == sorted(totals, reverse=True)
        assert "LeastAllocated" in scores[0]["by_plugin"]


def test_without_explain_there_are_no_scores(cli: Invoke) -> None:
    run = schedule(cli, workload=OAKESTRA)
    for placement in result_json(run)["placements"]:
        assert "top_scores" not in placement["reasons"]
        assert "feasible" not in placement["reasons"]


@pytest.mark.parametrize("name", ["result.json", "out/nested/result.json"])
def test_out_writes_the_json_to_the_file_and_only_a_summary_to_stdout(
    cli: Invoke, tmp_path: Path, name: str
) -> None:
    run = schedule(cli, "--out", name, workload=OAKESTRA)

    run.assert_clean()
    assert run.code == 0
    data = json.loads((tmp_path / name).read_text(encoding="utf-8"))
    assert placed(data).keys() == {"clientsrvr.curl.0", "clientsrvr.nginx.0"}
    assert data["stats"]["scheduled"] == 2
    assert not run.stdout.lstrip().startswith("{")
    assert f"written to {name}" in run.out


def test_out_with_a_yaml_name_writes_yaml(cli: Invoke, tmp_path: Path) -> None:
    run = schedule(cli, "--out", "result.yaml", workload=OAKESTRA)

    assert run.code == 0
    text = (tmp_path / "result.yaml").read_text(encoding="utf-8")
    assert not text.lstrip().startswith("{")
    assert yaml.safe_load(text)["stats"]["scheduled"] == 2


@pytest.mark.parametrize("nodes", [TINY_YAML, TINY_JSON], ids=["yaml", "json"])
def test_binpack_fills_one_node_and_spread_uses_all(cli: Invoke, nodes: Path) -> None:
    binpack = placed(result_json(schedule(cli, "--policy", "binpack", nodes=nodes)))
    spread = placed(result_json(schedule(cli, "--policy", "spread", nodes=nodes)))

    assert binpack == {"web-0": "n1", "web-1": "n1", "web-2": "n1"}
    assert spread["web-0"] == "n1"  # equal nodes: the first one wins the tie
    assert sorted(spread.values()) == ["n1", "n2", "n3"]


def test_the_result_names_the_policy(cli: Invoke) -> None:
    run = schedule(cli, "--policy", "binpack")
    assert result_json(run)["policy"] == "binpack"
    assert "with policy 'binpack'" in run.err


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_honours_affinity_and_direct_constraints(cli: Invoke, policy: str) -> None:
    # db-0 needs disk=ssd outside zone a: only n3. pinned-0 names n2 directly.
    run = schedule(cli, "--policy", policy, workload=CONSTRAINED)

    run.assert_clean()
    assert run.code == 0
    assert placed(result_json(run)) == {"db-0": "n3", "pinned-0": "n2"}


def test_direct_constraint_on_a_cluster(cli: Invoke, tmp_path: Path) -> None:
    workload = write_json(
        tmp_path / "w.json",
        [
            {"id": f"r{i}", "cpu_m": 100, "constraints": [{"type": "direct", "cluster": "site-b"}]}
            for i in range(2)
        ],
    )
    run = schedule(cli, "--policy", "spread", workload=workload)
    assert placed(result_json(run)) == {"r0": "n3", "r1": "n3"}


def test_direct_constraint_naming_an_unknown_node_is_unresolvable(
    cli: Invoke, tmp_path: Path
) -> None:
    workload = write_json(
        tmp_path / "w.json",
        [{"id": "r0", "cpu_m": 100, "constraints": [{"type": "direct", "nodes": "n2;ghost"}]}],
    )
    run = schedule(cli, workload=workload)

    assert run.code == 0
    (placement,) = result_json(run)["placements"]
    assert placement["node"] is None
    assert placement["status"] == "UNRESOLVABLE"
    assert placement["reasons"]["summary"] == ["Direct: unknown node 'ghost'"]


def test_affinity_that_no_node_matches_is_unschedulable_with_counts(
    cli: Invoke, tmp_path: Path
) -> None:
    workload = write_json(
        tmp_path / "w.json",
        [
            {
                "id": "gpu-0",
                "labels": {"team": "vision"},
                "constraints": [{"type": "node_affinity", "match_labels": {"disk": "nvme"}}],
            }
        ],
    )
    run = schedule(cli, "--explain", workload=workload)

    assert run.code == 0
    (placement,) = result_json(run)["placements"]
    assert placement["node"] is None
    assert placement["status"] == "UNSCHEDULABLE"
    assert placement["reasons"]["rejected"]["NodeAffinity"]["count"] == 3
    assert placement["reasons"]["feasible"] == 0


def test_the_same_seed_gives_the_same_random_placements(cli: Invoke, tmp_path: Path) -> None:
    workload = write_json(tmp_path / "w.json", [{"id": f"r{i}", "cpu_m": 10} for i in range(12)])
    runs = [
        placed(result_json(schedule(cli, "--policy", "random", "--seed", 5, workload=workload)))
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert set(runs[0].values()) <= {"n1", "n2", "n3"}


# --- unplaced requests ------------------------------------------------------------------


def test_a_request_too_big_for_every_node_is_unresolvable_and_exit_0(cli: Invoke) -> None:
    run = schedule(cli, workload=TOO_BIG)

    run.assert_clean()
    assert run.code == 0
    data = result_json(run)
    assert placed(data) == {"small-0": "n1", "huge-0": None}
    huge = data["placements"][1]
    assert huge["status"] == "UNRESOLVABLE"
    assert any("cpu_m 64000m exceeds" in r for r in huge["reasons"]["summary"])
    assert any("memory_mib 1048576Mi exceeds" in r for r in huge["reasons"]["summary"])
    assert data["stats"]["scheduled"] == 1
    assert data["stats"]["unschedulable"] == 1
    assert "1 scheduled, 1 unschedulable" in run.err


def test_fail_unschedulable_exits_3_and_still_prints_the_result(cli: Invoke) -> None:
    run = schedule(cli, "--fail-unschedulable", workload=TOO_BIG)

    run.assert_clean()
    assert run.code == 3
    assert result_json(run)["stats"]["unschedulable"] == 1


def test_fail_unschedulable_exits_0_when_everything_is_placed(cli: Invoke) -> None:
    run = schedule(cli, "--fail-unschedulable")
    assert run.code == 0
    assert result_json(run)["stats"]["scheduled"] == 3


# --- input errors: exit 2, every problem with its path, nothing on stdout ----------------


def assert_input_error(run: Run, *messages: str) -> None:
    run.assert_clean()
    assert run.code == 2, run.result.output
    assert run.stdout == ""
    for message in messages:
        assert message in run.err


def test_unknown_field_in_a_request_names_its_path(cli: Invoke) -> None:
    run = schedule(cli, workload=UNKNOWN_FIELD)
    assert_input_error(run, "requests-unknown-field.json: 1 problem", "[1].foo: unknown field")


def test_unknown_field_in_a_wrapped_request_list_names_its_path(
    cli: Invoke, tmp_path: Path
) -> None:
    workload = write_json(
        tmp_path / "w.json", {"requests": [{"id": "a"}, {"id": "b", "cpu": 1, "mem": 2}]}
    )
    run = schedule(cli, workload=workload)
    assert_input_error(
        run, "2 problems", "requests[1].cpu: unknown field", "requests[1].mem: unknown field"
    )


def test_duplicate_request_ids_are_refused(cli: Invoke, tmp_path: Path) -> None:
    workload = write_json(tmp_path / "w.json", [{"id": "a"}, {"id": "b"}, {"id": "a"}])
    run = schedule(cli, workload=workload)
    assert_input_error(run, "[2].id: duplicate request id 'a'")


def test_invalid_sla_prints_every_error_with_its_path(cli: Invoke) -> None:
    run = schedule(cli, workload=SLA_INVALID)
    assert_input_error(
        run,
        "sla-invalid.json: 2 problems",
        "applications[0].microservices[0].memory: must be > 0",
        "applications[0].microservices[0].microservice_name: must be 1-10 letters or digits",
    )


@pytest.mark.parametrize("option", ["--nodes", "--workload"])
def test_a_missing_file_is_reported_not_raised(cli: Invoke, option: str) -> None:
    files = {"--nodes": TINY_YAML, "--workload": SMALL, option: Path("missing.yaml")}
    run = cli("schedule", *(x for item in files.items() for x in item))
    assert_input_error(run, "missing.yaml: 1 problem", "file not found")


def test_a_directory_is_reported_not_raised(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    run = schedule(cli, nodes=Path("adir"))
    assert_input_error(run, "is a directory, not a file")


def test_unknown_policy_lists_the_known_ones(cli: Invoke) -> None:
    run = schedule(cli, "--policy", "fastest")
    assert_input_error(run, "unknown policy 'fastest'", "known policies: " + ", ".join(POLICIES))


def test_yaml_syntax_error_in_the_node_file_names_line_and_column(cli: Invoke) -> None:
    run = schedule(cli, nodes=CLI_FIXTURES / "nodes-bad-syntax.yaml")
    assert_input_error(run, "invalid YAML at line 4, column 9")


def test_json_syntax_error_names_line_and_column(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "n.json").write_text('[\n  {"name": "n1",, "capacity": {}}\n]\n')
    run = schedule(cli, nodes=Path("n.json"))
    assert_input_error(run, "invalid JSON at line 2, column 17")


def test_duplicate_node_names_name_the_path(cli: Invoke) -> None:
    run = schedule(cli, nodes=CLI_FIXTURES / "nodes-duplicate.yaml")
    assert_input_error(run, "nodes-duplicate.yaml: 1 problem", "[1].name: duplicate node name 'n1'")


def test_an_empty_node_file_is_an_input_error(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing here\n")
    run = schedule(cli, nodes=Path("empty.yaml"))
    assert_input_error(run, "must be a list of nodes or an object (empty document)")


def test_node_errors_of_a_generated_style_document_carry_the_nodes_prefix(
    cli: Invoke, tmp_path: Path
) -> None:
    nodes = {
        "clusters": [{"name": "a"}],
        "nodes": [
            {"name": "n1", "cluster": "a", "capacity": {"cpu_m": 1000}},
            {"name": "n2", "cluster": "b", "capacity": {"cpu_m": -1}},
        ],
    }
    run = schedule(cli, nodes=write_json(tmp_path / "n.json", nodes))
    assert_input_error(run, "nodes[1].capacity.cpu_m: must be >= 0")


def test_missing_required_options_are_usage_errors(cli: Invoke) -> None:
    run = cli("schedule", "--nodes", TINY_YAML)
    assert run.code == 2
    assert "Missing option '--workload'" in run.err


# --- the real console script --------------------------------------------------------------


def test_console_script_reports_invalid_input_without_a_traceback(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "harmonia.cli.app",
        "schedule",
        "--nodes",
        str(TINY_YAML),
        "--workload",
        str(SLA_INVALID),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )

    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert "applications[0].microservices[0].memory: must be > 0" in proc.stderr


# --- known bugs ---------------------------------------------------------------------------


def test_policy_name_with_markup_is_an_input_error(cli: Invoke) -> None:
    run = schedule(cli, "--policy", "[/]")
    assert_input_error(run, "unknown policy '[/]'")


@pytest.mark.parametrize(
    ("request_", "shown"),
    [
        ({"id": "[/]", "cpu_m": 1}, "[/]"),
        ({"id": "[b]web", "cpu_m": 1}, "[b]web"),
        ({"id": "r0", "constraints": [{"type": "direct", "nodes": "[/]"}]}, "unknown node '[/]'"),
    ],
    ids=["closing-tag-id", "style-tag-id", "markup-in-reason"],
)
def test_user_strings_in_the_summary_table_are_printed_literally(
    cli: Invoke, tmp_path: Path, request_: dict[str, Any], shown: str
) -> None:
    run = schedule(cli, workload=write_json(tmp_path / "w.json", [request_]))
    run.assert_clean()
    assert run.code == 0
    assert shown in run.err


def test_negative_seed_is_a_usage_error(cli: Invoke) -> None:
    run = schedule(cli, "--seed", -1)
    run.assert_clean()
    assert run.code == 2


@pytest.mark.parametrize("where", ["request", "node"])
def test_resource_amounts_beyond_int64_are_input_errors(
    cli: Invoke, tmp_path: Path, where: str
) -> None:
    huge = 2**64
    if where == "request":
        run = schedule(cli, workload=write_json(tmp_path / "w.json", [{"id": "r", "cpu_m": huge}]))
    else:
        nodes = [{"name": "big", "capacity": {"cpu_m": huge}}]
        run = schedule(cli, nodes=write_json(tmp_path / "n.json", nodes))
    assert_input_error(run, "cpu_m")
