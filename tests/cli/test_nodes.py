"""``harmonia nodes generate``: files that parse back as node lists, reproducible by seed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harmonia.model.documents import NodeList, load_document, parse_nodes
from tests.cli.conftest import OAKESTRA, Invoke


def read_back(path: Path) -> NodeList:
    return parse_nodes(load_document(path.read_text(encoding="utf-8"), str(path)), str(path))


def generate(cli: Invoke, out: str, *args: object) -> None:
    run = cli("nodes", "generate", "--out", out, *args)
    run.assert_clean()
    assert run.code == 0, run.result.output


@pytest.mark.parametrize("name", ["nodes.yaml", "nodes.yml", "nodes.json"])
def test_generated_file_parses_back_with_count_nodes_in_k_clusters(
    cli: Invoke, tmp_path: Path, name: str
) -> None:
    run = cli("nodes", "generate", "--count", 12, "--clusters", 3, "--seed", 7, "--out", name)

    run.assert_clean()
    assert run.code == 0
    node_list = read_back(tmp_path / name)
    assert len(node_list.nodes) == 12
    assert len({n.name for n in node_list.nodes}) == 12
    assert len(node_list.clusters) == 3
    per_cluster = Counter(n.cluster for n in node_list.nodes)
    assert set(per_cluster) == {c.name for c in node_list.clusters}
    assert sorted(per_cluster.values()) == [4, 4, 4]  # split evenly
    assert f"wrote 12 nodes in 3 cluster(s) to {name}" in run.out


def test_yaml_name_gives_yaml_and_json_name_gives_json(cli: Invoke, tmp_path: Path) -> None:
    generate(cli, "n.yaml", "--count", 3)
    generate(cli, "n.json", "--count", 3)

    yaml_text = (tmp_path / "n.yaml").read_text(encoding="utf-8")
    json_text = (tmp_path / "n.json").read_text(encoding="utf-8")
    assert not yaml_text.lstrip().startswith("{")
    assert yaml_text.startswith("clusters:")
    assert yaml.safe_load(yaml_text) == json.loads(json_text)  # same document, two syntaxes


def test_document_has_clusters_and_nodes_and_omits_empty_fields(
    cli: Invoke, tmp_path: Path
) -> None:
    generate(cli, "n.json", "--count", 10, "--clusters", 2)
    data = json.loads((tmp_path / "n.json").read_text(encoding="utf-8"))

    assert set(data) == {"clusters", "nodes"}
    for node in data["nodes"]:
        assert {"name", "cluster", "role", "capacity"} <= set(node)
        assert "unschedulable" not in node  # false is the default, left out
        if "taints" in node:
            assert node["taints"]  # present only when there are taints


def test_one_cluster_by_default(cli: Invoke, tmp_path: Path) -> None:
    generate(cli, "n.yaml", "--count", 5)
    node_list = read_back(tmp_path / "n.yaml")
    assert [c.name for c in node_list.clusters] == ["cluster-0"]
    assert {n.cluster for n in node_list.nodes} == {"cluster-0"}


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_same_seed_gives_an_identical_file(cli: Invoke, tmp_path: Path, suffix: str) -> None:
    generate(cli, f"a.{suffix}", "--count", 20, "--clusters", 2, "--seed", 42)
    generate(cli, f"b.{suffix}", "--count", 20, "--clusters", 2, "--seed", 42)
    generate(cli, f"c.{suffix}", "--count", 20, "--clusters", 2, "--seed", 43)

    a, b, c = ((tmp_path / f"{x}.{suffix}").read_bytes() for x in "abc")
    assert a == b
    assert a != c


def test_generated_nodes_schedule_the_oakestra_example(cli: Invoke) -> None:
    generate(cli, "n.yaml", "--count", 8, "--clusters", 2, "--seed", 1)
    run = cli("schedule", "--nodes", "n.yaml", "--workload", OAKESTRA)

    run.assert_clean()
    assert run.code == 0
    assert json.loads(run.stdout)["stats"]["scheduled"] == 2


def test_missing_parent_folders_are_created(cli: Invoke, tmp_path: Path) -> None:
    generate(cli, "deep/er/n.json", "--count", 2)
    assert len(read_back(tmp_path / "deep/er/n.json").nodes) == 2


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--count", 0], "--count"),
        (["--count", -3], "--count"),
        (["--count", 2, "--clusters", 0], "--clusters"),
        (["--count", "many"], "--count"),
    ],
)
def test_bad_counts_are_usage_errors_and_write_nothing(
    cli: Invoke, tmp_path: Path, args: list[object], option: str
) -> None:
    run = cli("nodes", "generate", "--out", "n.yaml", *args)

    run.assert_clean()
    assert run.code == 2
    assert f"Invalid value for '{option}'" in run.err
    assert not (tmp_path / "n.yaml").exists()


def test_more_clusters_than_nodes_is_an_input_error(cli: Invoke, tmp_path: Path) -> None:
    run = cli("nodes", "generate", "--count", 2, "--clusters", 5, "--out", "n.yaml")

    run.assert_clean()
    assert run.code == 2
    assert "count: must be >= clusters (5), got 2" in run.err
    assert not (tmp_path / "n.yaml").exists()


def test_missing_out_is_a_usage_error(cli: Invoke) -> None:
    run = cli("nodes", "generate", "--count", 2)
    assert run.code == 2
    assert "Missing option '--out'" in run.err


def test_an_unwritable_out_is_reported_not_raised(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    run = cli("nodes", "generate", "--count", 2, "--out", "file/n.yaml")

    run.assert_clean()
    assert run.code == 2
    assert "file/n.yaml: 1 problem" in run.err
    assert "cannot be written" in run.err


def test_negative_seed_is_a_usage_error(cli: Invoke) -> None:
    run = cli("nodes", "generate", "--count", 2, "--seed", -1, "--out", "n.yaml")
    run.assert_clean()
    assert run.code == 2
