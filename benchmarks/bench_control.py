"""Speed and weight of the control plane, on loopback. Prints one JSON document.

- ``instance_start``: time from ``POST /api/service/{id}/instance`` at the root to the
  instance being ``RUNNING`` (p50/p99 over ``--instances`` instances of a ``sleep``
  process; target p50 ≤ 200 ms). Each instance is timed alone: the next is posted once
  the previous one runs.
- ``rss_mb``: resident memory at idle of each node engine, the root and each cluster
  manager (targets: node engine ≤ 60 MB; root + one cluster manager ≤ 200 MB).
- ``heartbeats``: one cluster manager receiving 1 Hz heartbeats from ``--nodes``
  emulated nodes for ``--seconds`` seconds: heartbeats answered per second, reply
  latency, whether every emulated node stayed healthy, and the manager's CPU time per
  heartbeat (its capacity on one core is the inverse). Target: ≥ 1,000 nodes at 1 Hz.

    python benchmarks/bench_control.py [--instances 100] [--nodes 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from harmonia.control import embedded
from harmonia.control.config import ClusterConfig
from harmonia.control.protocol import Heartbeat, NodeRegistration, Registered, Usage
from harmonia.model import Node, NodeRole, Resources

TARGET_START_P50_MS = 200.0
TARGET_NODE_RSS_MB = 60.0
TARGET_ROOT_CLUSTER_RSS_MB = 200.0
TARGET_HEARTBEAT_NODES = 1000
CONNECTIONS = 16

SLEEPER = {
    "sla_version": "v2.0",
    "customerID": "bench",
    "applications": [
        {
            "applicationID": "",
            "application_name": "bench",
            "application_namespace": "bench",
            "application_desc": "sleep processes for the start-latency benchmark",
            "microservices": [
                {
                    "microserviceID": "",
                    "microservice_name": "sleeper",
                    "microservice_namespace": "bench",
                    "virtualization": "process",
                    "cmd": ["sleep", "3600"],
                    "memory": 32,
                    "vcpus": 0.01,
                    "code": "",
                    "replicas": 1,
                }
            ],
        }
    ],
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def login(system: embedded.System) -> dict[str, str]:
    credentials = json.loads(system.credentials.read_text(encoding="utf-8"))
    reply = httpx.post(f"{system.root_url}/api/auth/login", json=credentials)
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def measure_rss(system: embedded.System) -> dict[str, Any]:
    by_role: dict[str, list[float]] = {}
    for process in system.processes:
        by_role.setdefault(process.role, []).append(rss_mb(process.pid))
    root = by_role["root"][0]
    cluster = max(by_role["cluster"])
    node = max(by_role["node"])
    return {
        "root": root,
        "cluster_managers": by_role["cluster"],
        "node_engines": by_role["node"],
        "root_plus_one_cluster": round(root + cluster, 1),
        "node_engine_max": node,
        "target_node_engine": TARGET_NODE_RSS_MB,
        "target_root_plus_cluster": TARGET_ROOT_CLUSTER_RSS_MB,
        "met": node <= TARGET_NODE_RSS_MB and root + cluster <= TARGET_ROOT_CLUSTER_RSS_MB,
    }


def instance_start(system: embedded.System, count: int) -> dict[str, Any]:
    url = system.root_url
    headers = login(system)
    with httpx.Client(base_url=url, headers=headers, timeout=10.0) as client:
        created = client.post("/api/application/", json=SLEEPER)
        created.raise_for_status()
        app_id = created.json()[0]["applicationID"]
        service_id = client.get(f"/api/services/{app_id}").json()[0]["microserviceID"]
        latencies: list[float] = []
        for i in range(count):
            started = time.perf_counter()
            reply = client.post(f"/api/service/{service_id}/instance")
            reply.raise_for_status()
            instance_id = reply.json()["instance_id"]
            while True:
                state = client.get(f"/api/instances/{instance_id}").json()["state"]
                if state == "RUNNING":
                    break
                if state == "FAILED" or time.perf_counter() - started > 30:
                    raise RuntimeError(f"instance {instance_id} ended {state}")
                time.sleep(0.002)
            latencies.append((time.perf_counter() - started) * 1000)
            if (i + 1) % 20 == 0:
                log(f"[start] {i + 1}/{count}, p50 so far {statistics.median(latencies):.0f} ms")
        client.delete(f"/api/application/{app_id}")
    p50 = percentile(latencies, 50)
    return {
        "instances": count,
        "p50_ms": round(p50, 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "target_p50_ms": TARGET_START_P50_MS,
        "met": p50 <= TARGET_START_P50_MS,
    }


async def _heartbeat_load(url: str, token: str, nodes: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=10.0, limits=limits) as client:
        secrets_by_node: dict[str, str] = {}
        for i in range(nodes):
            name = f"emu-{i:05d}"
            node = Node(
                name=name,
                cluster="bench",
                role=NodeRole.EDGE,
                capacity=Resources(cpu_m=4000, memory_mib=4096),
            )
            body = NodeRegistration(node=node, url="http://127.0.0.1:9", join_token=token)
            reply = await client.post(
                "/api/nodes/register",
                content=body.model_dump_json(),
                headers={"Content-Type": "application/json"},
            )
            if reply.status_code != 200:
                raise RuntimeError(f"registering {name}: {reply.status_code} {reply.text}")
            secrets_by_node[name] = Registered.model_validate_json(reply.content).secret
        usage = Usage(cpu_percent=1.0, memory_used_mib=100, memory_total_mib=4096)
        payload = Heartbeat(usage=usage, instances=[]).model_dump_json().encode()
        host, port = url.split("//", 1)[1].split(":")
        # A wrk-like generator: pre-encoded requests on a few keep-alive connections, so
        # the emulated nodes cost little CPU next to the manager they load.
        requests = {
            name: (
                f"POST /api/nodes/{name}/heartbeat HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            ).encode()
            + payload
            for name, secret in secrets_by_node.items()
        }
        latencies: list[float] = []
        errors = 0
        sent = 0
        names = sorted(requests)
        start = time.perf_counter() + 0.5

        async def connection(share: list[tuple[float, str]]) -> None:
            nonlocal errors, sent
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                for due, name in share:
                    await asyncio.sleep(max(0.0, start + due - time.perf_counter()))
                    began = time.perf_counter()
                    writer.write(requests[name])
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    await reader.readexactly(length)
                    if not head.startswith(b"HTTP/1.1 200"):
                        errors += 1
                    latencies.append(time.perf_counter() - began)
                    sent += 1
            finally:
                writer.close()

        # Node i beats at i/nodes + k seconds; connection c carries every CONNECTIONS-th
        # beat in time order.
        schedule = sorted(
            (k + i / nodes, name) for k in range(int(seconds)) for i, name in enumerate(names)
        )
        await asyncio.gather(*(connection(schedule[c::CONNECTIONS]) for c in range(CONNECTIONS)))
        elapsed = time.perf_counter() - start
        health = (await client.get("/health")).json()
    return {
        "sent": sent,
        "errors": errors,
        "elapsed_s": round(elapsed, 2),
        "latencies": latencies,
        "health": health,
    }


def heartbeats(state_dir: Path, system: embedded.System, nodes: int, seconds: float) -> dict:
    """A separate cluster manager (registered with the running root) under emulated nodes."""
    headers = login(system)
    token = httpx.post(f"{system.root_url}/api/clusters/tokens", headers=headers, json={}).json()[
        "token"
    ]
    node_token = secrets.token_urlsafe(24)
    config = ClusterConfig(
        state_dir=state_dir / "bench-cluster",
        name="bench",
        root_url=system.root_url,
        root_join_token=token,
        node_join_token=node_token,
        heartbeat_interval_s=1.0,
        missed_heartbeats=3,
    )
    process = embedded._start(system, "cluster", "bench", config)
    url = embedded._wait_address(process, time.monotonic() + 30)
    manager = psutil.Process(process.pid)
    cpu_before = sum(manager.cpu_times()[:2])
    load = asyncio.run(_heartbeat_load(url, node_token, nodes, seconds))
    cpu = sum(manager.cpu_times()[:2]) - cpu_before
    latencies = load.pop("latencies")
    rate = load["sent"] / load["elapsed_s"] if load["elapsed_s"] else 0.0
    healthy = int(load["health"].get("healthy_nodes", -1))
    cpu_per_beat_ms = cpu / max(load["sent"], 1) * 1000
    return {
        "nodes": nodes,
        "seconds": seconds,
        "heartbeats_sent": load["sent"],
        "errors": load["errors"],
        "answered_per_s": round(rate, 1),
        "reply_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "reply_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "healthy_nodes_at_end": healthy,
        "manager_rss_mb": rss_mb(process.pid),
        "manager_cpu_ms_per_heartbeat": round(cpu_per_beat_ms, 3),
        "capacity_nodes_at_1hz_per_core": round(1000 / cpu_per_beat_ms) if cpu else None,
        "target_nodes": TARGET_HEARTBEAT_NODES,
        "met": nodes >= TARGET_HEARTBEAT_NODES
        and load["errors"] == 0
        and healthy == nodes
        and rate >= 0.95 * nodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--nodes-per-cluster", type=int, default=2)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "benchmark": "bench_control",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    with tempfile.TemporaryDirectory(prefix="harmonia-bench-") as tmp:
        state_dir = Path(tmp)
        log(f"[up] {args.clusters} cluster(s) × {args.nodes_per_cluster} node(s) ...")
        started = time.perf_counter()
        system = embedded.up(state_dir, args.clusters, args.nodes_per_cluster, timeout_s=120)
        report["up_seconds"] = round(time.perf_counter() - started, 2)
        try:
            time.sleep(2.0)  # let start-up work settle before calling it idle
            report["rss_mb_idle"] = measure_rss(system)
            log(f"[start] {args.instances} instances, one at a time ...")
            report["instance_start"] = instance_start(system, args.instances)
            log(f"[heartbeats] {args.nodes} emulated nodes for {args.seconds:g} s ...")
            report["heartbeats"] = heartbeats(state_dir, system, args.nodes, args.seconds)
        finally:
            embedded.down(state_dir)
    report["met"] = all(report[k]["met"] for k in ("rss_mb_idle", "instance_start", "heartbeats"))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
