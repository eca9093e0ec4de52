"""``python -m harmonia.control.root``: configuration errors and a clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harmonia.control.root.__main__ import main
from harmonia.control.serve import read_address


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such configuration file"),
        ("{not json", "not JSON"),
        ('{"state_dir": "x", "port": -1}', "port: must be >= 0"),
        ('{"state_dir": "x", "policy": "nope"}', "unknown policy 'nope'"),
        ('{"state_dir": "x", "colour": "red"}', "colour: unknown field"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    path = tmp_path / "root.json"
    if content is not None:
        path.write_text(content.replace('"x"', json.dumps(str(tmp_path / "state"))))
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("harmonia root: ")
    assert expected in err
    assert "Traceback" not in err


def test_process_serves_writes_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = tmp_path / "root.json"
    credentials = tmp_path / "admin.json"
    config.write_text(
        json.dumps({"state_dir": str(state), "admin_password_file": str(credentials)})
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "harmonia.control.root", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while (url := read_address(state)) is None:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "no address written"
            time.sleep(0.05)
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        assert json.loads(credentials.read_text())["username"] == "admin"
        assert httpx.get(f"{url}/docs").status_code == 200
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=15)[0].decode()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.returncode in (0, -signal.SIGTERM), output
        assert "Traceback" not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
