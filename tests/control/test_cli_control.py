"""The control-plane commands' answers when there is no system, and on bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from harmonia.cli.app import app
from harmonia.control import embedded


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_status_without_a_system_says_how_to_start_one(tmp_path: Path) -> None:
    code, out = run("status", "--state-dir", str(tmp_path))
    assert code == 2
    assert "no system in" in out and "harmonia up" in out


def test_down_without_a_system_stops_nothing(tmp_path: Path) -> None:
    code, out = run("down", "--state-dir", str(tmp_path))
    assert code == 0
    assert "nothing was running" in out


def test_logs_stream_must_be_stdout_or_stderr(tmp_path: Path) -> None:
    code, out = run("logs", "x.0", "--stream", "both", "--state-dir", str(tmp_path))
    assert code == 2
    assert "--stream" in out and "stdout or stderr" in out


def test_deploy_reports_every_descriptor_problem_before_calling_the_root(tmp_path: Path) -> None:
    descriptor = tmp_path / "app.json"
    descriptor.write_text(json.dumps({"sla_version": "v2.0", "customerID": "x"}))
    code, out = run("deploy", str(descriptor), "--state-dir", str(tmp_path))
    assert code == 2
    assert "applications" in out  # the missing field, named; no system was needed


def test_a_damaged_system_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / embedded.SYSTEM_FILE).write_text("{not json")
    code, out = run("status", "--state-dir", str(tmp_path))
    assert code == 2
    assert "unreadable" in out and "system.json" in out


def test_up_refuses_impossible_sizes(tmp_path: Path) -> None:
    code, out = run("up", "--clusters", "0", "--state-dir", str(tmp_path))
    assert code == 2
    assert "--clusters" in out
    assert not (tmp_path / embedded.SYSTEM_FILE).exists()
