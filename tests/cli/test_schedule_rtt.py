"""``harmonia schedule --rtt MATRIX --rtt-index INDEX``: the example under
``examples/latency`` end to end, the same workload refused by ``default``, and input
errors that name the file and the field, exit 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke, Run

EXAMPLE = Path(__file__).parents[2] / "examples" / "latency"
NODES = EXAMPLE / "nodes.yaml"
REQUESTS = EXAMPLE / "requests.json"
MATRIX = EXAMPLE / "rtt.txt"
INDEX = EXAMPLE / "rtt-index.json"


def schedule(cli: Invoke, *args: object, matrix: Path = MATRIX, index: Path = INDEX) -> Run:
    return cli(
        "schedule",
        "--nodes",
        NODES,
        "--workload",
        REQUESTS,
        "--rtt",
        matrix,
        "--rtt-index",
        index,
        *args,
    )


def by_request(run: Run) -> dict[str, dict[str, Any]]:
    data = json.loads(run.stdout)
    return {p["request"]: p for p in data["placements"]}


def rtt(a: str, b: str) -> float:
    """The example matrix, read here by hand."""
    rows = [line.split() for line in MATRIX.read_text().splitlines() if not line.startswith("#")]
    index = json.loads(INDEX.read_text())
    return float(rows[index[a]][index[b]])


def test_example_places_every_request_within_its_bound(cli: Invoke) -> None:
    run = schedule(cli, "--policy", "latency")

    run.assert_clean()
    assert run.code == 0
    placed = by_request(run)
    camera = placed["camera-gw-0"]["node"]
    assert rtt("edge-1", camera) <= 5
    assert rtt(camera, placed["detector-0"]["node"]) <= 10  # target: the camera service
    assert placed["dashboard-0"]["node"].startswith("cloud-")  # unbounded: the cloud
    assert rtt("edge-4", placed["berlin-cache-0"]["node"]) <= 5
    assert placed["munich-only-0"]["node"] in {"edge-1", "edge-2", "edge-3"}
    # Hamburg user, 8 ms: Berlin (~255 km → 5.8 ms) and Frankfurt (~393 km → 7.9 ms) qualify
    assert placed["hamburg-app-0"]["node"] not in {"edge-1", "edge-2", "edge-3"}
    paris = placed["paris-app-0"]
    assert paris["status"] == "UNSCHEDULABLE"
    assert paris["reasons"]["summary"][1] == (
        "Latency: latency location (48.857, 2.352): best RTT 9.2 ms (node cloud-1) > 8 ms"
    )
    split = placed["split-0"]
    assert split["status"] == "UNSCHEDULABLE"
    assert (
        split["reasons"]["summary"][1] == "Latency: no node is within all 2 latency bounds at once"
    )
    assert "6 scheduled, 2 unschedulable on 7 nodes with policy 'latency'" in run.err


def test_default_refuses_the_bounded_requests_of_the_example(cli: Invoke) -> None:
    run = schedule(cli, "--policy", "default")

    run.assert_clean()
    placed = by_request(run)
    assert placed["dashboard-0"]["status"] == "OK"
    assert placed["munich-only-0"]["reasons"]["summary"] == [
        "policy 'default' has no plugin that enforces 'geo' constraints"
    ]
    assert placed["camera-gw-0"]["status"] == "UNRESOLVABLE"


def test_without_rtt_files_node_bounds_are_unresolvable(cli: Invoke) -> None:
    run = cli("schedule", "--nodes", NODES, "--workload", REQUESTS, "--policy", "latency")

    run.assert_clean()
    placed = by_request(run)
    assert placed["camera-gw-0"]["reasons"]["summary"] == [
        "Latency: delay_edge-1: the state has no RTT data to check it against"
    ]
    # bounds to user positions need coordinates only
    assert placed["hamburg-app-0"]["status"] == "OK"


def assert_input_error(run: Run, *messages: str) -> None:
    run.assert_clean()
    assert run.code == 2, run.result.output
    assert run.stdout == ""
    for message in messages:
        assert message in run.err, run.err


def test_rtt_needs_its_index_and_the_index_its_matrix(cli: Invoke) -> None:
    only_matrix = cli("schedule", "--nodes", NODES, "--workload", REQUESTS, "--rtt", MATRIX)
    assert_input_error(only_matrix, "--rtt-index: is needed with --rtt")
    only_index = cli("schedule", "--nodes", NODES, "--workload", REQUESTS, "--rtt-index", INDEX)
    assert_input_error(only_index, "--rtt: is needed with --rtt-index")


def test_matrix_and_index_problems_name_their_file_and_place(cli: Invoke, tmp_path: Path) -> None:
    matrix = tmp_path / "bad-rtt.txt"
    rows = MATRIX.read_text().splitlines()
    rows[3] = rows[3] + " 7"  # the second data row gets an eighth value
    matrix.write_text("\n".join(rows) + "\n")
    index = tmp_path / "bad-index.json"
    index.write_text(json.dumps({**json.loads(INDEX.read_text()), "edge-2": 9}))

    run = schedule(cli, matrix=matrix, index=index)

    assert_input_error(
        run,
        "--rtt/--rtt-index: 3 problems",
        f"{matrix} line 4: expected 7 values, got 8",
        f'{index}["edge-2"]: row 9 out of range 0..6',
        f"{index}: rows without a node name: 1",
    )


def test_index_must_cover_every_node(cli: Invoke, tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    names = json.loads(INDEX.read_text())
    index.write_text(json.dumps({(f"x{k}" if "cloud" in k else k): v for k, v in names.items()}))

    run = schedule(cli, index=index)

    assert_input_error(
        run, f"{index}: 1 problem", "has no row for 2 node(s) of --nodes: 'cloud-1', 'cloud-2'"
    )


def test_missing_rtt_file_is_named(cli: Invoke, tmp_path: Path) -> None:
    run = schedule(cli, matrix=tmp_path / "nope.txt")
    assert_input_error(run, "nope.txt: 1 problem", "file not found")


def test_a_larger_matrix_than_the_node_list_is_accepted(cli: Invoke, tmp_path: Path) -> None:
    matrix = tmp_path / "rtt.txt"
    rows = [line.split() for line in MATRIX.read_text().splitlines() if not line.startswith("#")]
    rows = [[*row, "50"] for row in rows] + [["50"] * len(rows) + ["0"]]
    matrix.write_text("\n".join(" ".join(row) for row in rows) + "\n")
    index = tmp_path / "index.json"
    index.write_text(json.dumps({**json.loads(INDEX.read_text()), "elsewhere": len(rows) - 1}))

    run = schedule(cli, "--policy", "latency", matrix=matrix, index=index)

    run.assert_clean()
    assert run.code == 0
    assert by_request(run)["camera-gw-0"]["status"] == "OK"
