"""``harmonia --version``, ``--help`` of every command, ``policies`` and ``validate``."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harmonia import __version__
from tests.cli.conftest import CLI_FIXTURES, EDGE_VIDEO, OAKESTRA, POLICIES, Invoke, plain

SLA_INVALID = CLI_FIXTURES / "sla-invalid.json"


def console_script() -> list[str]:
    """The installed ``harmonia`` next to this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("harmonia")
    return [str(script)] if script.exists() else [sys.executable, "-m", "harmonia.cli.app"]


def oakestra() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OAKESTRA.read_text(encoding="utf-8"))
    return data


# --- version and help ---------------------------------------------------------------------


def test_version_prints_the_package_version(cli: Invoke) -> None:
    run = cli("--version")
    assert run.code == 0
    assert run.stdout == f"harmonia {__version__}\n"


def test_version_wins_over_a_command(cli: Invoke) -> None:
    run = cli("--version", "schedule")
    assert run.code == 0
    assert run.stdout == f"harmonia {__version__}\n"


def test_console_script_prints_the_version(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*console_script(), "--version"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"harmonia {__version__}"
    assert proc.stderr == ""


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ([], ["schedule", "nodes", "policies", "validate", "--version", "--help"]),
        (
            ["schedule"],
            [
                "--nodes",
                "--workload",
                "--policy",
                "--explain",
                "--out",
                "--seed",
                "--fail-unschedulable",
            ],
        ),
        (["nodes"], ["generate"]),
        (["nodes", "generate"], ["--count", "--out", "--clusters", "--seed"]),
        (["policies"], ["List the scheduling policies"]),
        (["validate"], ["DESCRIPTOR", "SLA descriptor"]),
    ],
    ids=["app", "schedule", "nodes", "nodes-generate", "policies", "validate"],
)
def test_help_describes_every_command_and_option(
    cli: Invoke, command: list[str], mentions: list[str]
) -> None:
    run = cli(*command, "--help")

    run.assert_clean()
    assert run.code == 0
    assert f"Usage: harmonia {' '.join(command)}".strip() in run.out
    for text in mentions:
        assert text.lower() in run.out.lower()


@pytest.mark.parametrize("command", [[], ["nodes"]], ids=["app", "nodes"])
def test_no_subcommand_shows_help(cli: Invoke, command: list[str]) -> None:
    run = cli(*command)
    assert run.code == 2  # Click's no_args_is_help: help text, usage exit status
    assert "Usage: harmonia" in plain(run.result.output)


def test_an_unknown_command_is_a_usage_error(cli: Invoke) -> None:
    run = cli("frobnicate")
    assert run.code == 2
    assert "No such command 'frobnicate'" in run.err


# --- policies -----------------------------------------------------------------------------


def test_policies_lists_every_built_in_policy(cli: Invoke) -> None:
    run = cli("policies")

    run.assert_clean()
    assert run.code == 0
    names = [line.split("│")[1].strip() for line in run.stdout.splitlines() if "│" in line]
    assert [n for n in names if n] == list(POLICIES)
    assert "MostAllocated ×1" in run.out
    assert "fill the fullest node that fits" in run.out
    assert "Oakestra's ROM" in run.out and "Oakestra's LDP" in run.out


# --- validate -----------------------------------------------------------------------------


def test_validate_oakestra_example_counts_what_it_holds(cli: Invoke) -> None:
    run = cli("validate", OAKESTRA)

    run.assert_clean()
    assert run.code == 0
    assert "valid — 1 application(s), 2 microservice(s), 2 instance(s)" in run.out


def test_validate_yaml_counts_replicas_as_instances(cli: Invoke) -> None:
    run = cli("validate", EDGE_VIDEO)
    assert run.code == 0
    assert "valid — 1 application(s), 3 microservice(s), 6 instance(s)" in run.out


def test_validate_counts_replicas(cli: Invoke, tmp_path: Path) -> None:
    data = oakestra()
    data["applications"][0]["microservices"][1]["replicas"] = 4
    (tmp_path / "sla.json").write_text(json.dumps(data))

    run = cli("validate", "sla.json")
    assert run.code == 0
    assert "sla.json: valid — 1 application(s), 2 microservice(s), 5 instance(s)" in run.out


def test_validate_invalid_descriptor_prints_every_error(cli: Invoke) -> None:
    run = cli("validate", SLA_INVALID)

    run.assert_clean()
    assert run.code == 2
    assert run.stdout == ""
    assert "sla-invalid.json: 2 problems" in run.err
    assert "applications[0].microservices[0].memory: must be > 0" in run.err
    assert (
        "applications[0].microservices[0].microservice_name: must be 1-10 letters or digits"
        in run.err
    )


def test_validate_reports_many_errors_at_once(cli: Invoke, tmp_path: Path) -> None:
    data = oakestra()
    curl, nginx = copy.deepcopy(data["applications"][0]["microservices"])
    curl["vcpus"] = -1
    curl["port"] = "70000"
    nginx["virtualization"] = "teleport"
    del nginx["code"]
    data["applications"][0]["microservices"] = [curl, nginx]
    data["sla_version"] = "v1"
    (tmp_path / "sla.json").write_text(json.dumps(data))

    run = cli("validate", "sla.json")

    run.assert_clean()
    assert run.code == 2
    assert "sla.json: 5 problems" in run.err
    for path in (
        "sla_version:",
        "applications[0].microservices[0].vcpus: must be > 0",
        "applications[0].microservices[0].port:",
        "applications[0].microservices[1].virtualization:",
        "applications[0].microservices[1].code: is required",
    ):
        assert path in run.err


def test_validate_refuses_what_cannot_be_scheduled(cli: Invoke, tmp_path: Path) -> None:
    data = oakestra()
    data["applications"][0]["microservices"][0]["vtpus"] = 1
    (tmp_path / "sla.json").write_text(json.dumps(data))

    run = cli("validate", "sla.json")

    run.assert_clean()
    assert run.code == 2
    assert "applications[0].microservices[0].vtpus: TPUs are not schedulable yet" in run.err


def test_validate_a_node_list_is_not_an_sla(cli: Invoke) -> None:
    run = cli("validate", CLI_FIXTURES / "tiny-nodes.yaml")
    assert run.code == 2
    assert "sla_version: is required" in run.err
    assert "clusters: unknown field" in run.err


def test_validate_missing_file(cli: Invoke) -> None:
    run = cli("validate", "nowhere.json")
    run.assert_clean()
    assert run.code == 2
    assert "nowhere.json: 1 problem file not found" in run.err


def test_validate_needs_a_descriptor(cli: Invoke) -> None:
    run = cli("validate")
    assert run.code == 2
    assert "Missing argument" in run.err


def test_console_script_validate_exit_codes(tmp_path: Path) -> None:
    good = subprocess.run(
        [*console_script(), "validate", str(OAKESTRA)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    bad = subprocess.run(
        [*console_script(), "validate", str(SLA_INVALID)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert good.returncode == 0
    assert "valid" in good.stdout
    assert bad.returncode == 2
    assert "Traceback" not in bad.stdout + bad.stderr
    assert "must be > 0" in bad.stderr


def test_validate_prints_the_file_name_literally(cli: Invoke, tmp_path: Path) -> None:
    (tmp_path / "a[b]c.json").write_text(OAKESTRA.read_text(encoding="utf-8"))
    run = cli("validate", "a[b]c.json")
    assert run.code == 0
    assert "a[b]c.json: valid" in run.out
