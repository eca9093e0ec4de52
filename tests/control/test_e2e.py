"""End to end on loopback: a real root, 2 cluster managers and 4 node engines as processes.

One system serves the whole module (starting it is the slow part); the tests run in
order: deploy, refusals, restarts, node failure. Heartbeats keep their defaults (every
1 s, 3 missed make a node dead), as the 5 s recovery bound is stated for them.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from harmonia.cli.app import app
from harmonia.control import embedded

EXAMPLE = Path(__file__).parents[2] / "examples" / "control" / "clientsrvr.json"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.System]:
    state_dir = tmp_path_factory.mktemp("harmonia-e2e")
    started = embedded.up(state_dir, 2, 2, timeout_s=90)
    try:
        yield started
    finally:
        embedded.down(state_dir)
        assert not any(p.alive() for p in started.processes)


def cli(system: embedded.System, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--state-dir", str(system.state_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def instances(system: embedded.System) -> list[dict[str, Any]]:
    data = json.loads(cli(system, "status", "--json"))
    return list(data["instances"])


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.1)


def admin_token(system: embedded.System) -> str:
    login = json.loads(system.credentials.read_text())
    reply = httpx.post(f"{system.root_url}/api/auth/login", json=login)
    assert reply.status_code == 200
    return str(reply.json()["access_token"])


def all_running(system: embedded.System) -> list[dict[str, Any]] | None:
    found = instances(system)
    return found if len(found) == 2 and all(i["state"] == "RUNNING" for i in found) else None


def test_deployed_example_runs_both_services(system: embedded.System) -> None:
    assert oct(system.credentials.stat().st_mode & 0o777) == "0o600"
    cli(system, "deploy", str(EXAMPLE), "--wait", "0")
    running = wait_for(lambda: all_running(system), 20, "both services RUNNING")
    assert {i["service"] for i in running} == {"clientsrvr.curl", "clientsrvr.nginx"}
    nodes = {p.name for p in system.processes if p.role == "node"}
    for instance in running:
        assert instance["node"] in nodes
        assert psutil.pid_exists(instance["pid"])
    out = cli(system, "logs", next(i["instance_id"] for i in running if "curl" in i["service"]))
    assert "client up" in out


def test_refused_requests_change_nothing(system: embedded.System) -> None:
    url = system.root_url
    before = instances(system)
    descriptor = json.loads(EXAMPLE.read_text())

    assert httpx.post(f"{url}/api/application/", json=descriptor).status_code == 401

    token = admin_token(system)
    admin = {"Authorization": f"Bearer {token}"}
    user = {"username": "mallory", "password": "a-long-password-1", "roles": ["app_provider"]}
    assert httpx.post(f"{url}/api/users", json=user, headers=admin).status_code in (200, 201)
    login = httpx.post(f"{url}/api/auth/login", json={k: user[k] for k in ("username", "password")})
    other = {"Authorization": f"Bearer {login.json()['access_token']}"}
    apps = httpx.get(f"{url}/api/applications/", headers=admin).json()
    app_id = apps[0]["applicationID"]
    assert httpx.delete(f"{url}/api/application/{app_id}", headers=other).status_code == 403

    broken = json.loads(EXAMPLE.read_text())
    broken["applications"][0]["microservices"][0]["memory"] = -5
    reply = httpx.post(f"{url}/api/application/", json=broken, headers=admin)
    assert reply.status_code == 422
    assert "memory" in reply.text

    assert [(i["instance_id"], i["state"], i["pid"]) for i in instances(system)] == [
        (i["instance_id"], i["state"], i["pid"]) for i in before
    ]


def test_root_and_cluster_restart_keep_state_and_instances(system: embedded.System) -> None:
    before = {i["instance_id"]: i for i in instances(system)}
    cluster = next(i["cluster"] for i in before.values())
    embedded.restart(system.state_dir, "root")
    embedded.restart(system.state_dir, cluster)
    reloaded = embedded.status_of(system.state_dir)
    assert reloaded is not None
    system.processes[:] = reloaded.processes
    system.root_url = reloaded.root_url

    def same() -> bool:
        now = {i["instance_id"]: i for i in instances(system)}
        return now.keys() == before.keys() and all(
            now[k]["state"] == "RUNNING" and now[k]["pid"] == before[k]["pid"] for k in now
        )

    wait_for(same, 15, "the same instances RUNNING with the same pids after restarts")
    assert all(psutil.pid_exists(i["pid"]) for i in before.values())


def test_killed_node_engine_instances_run_elsewhere_within_5_s(system: embedded.System) -> None:
    victim = instances(system)[0]
    engine = next(p for p in system.processes if p.name == victim["node"])
    os.kill(engine.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def moved() -> bool:
        now = {i["instance_id"]: i for i in instances(system)}
        again = now.get(victim["instance_id"])
        return bool(again and again["state"] == "RUNNING" and again["node"] != victim["node"])

    wait_for(moved, 5.0, "the dead node's instance RUNNING on another node")
    assert time.monotonic() - killed_at < 5.0
