"""An embedded system on one machine: a root, K cluster managers and K×N node engines as
local processes on loopback, for trying Harmonia out and for end-to-end tests.

:func:`up` starts them (each tier in its own process, ``python -m
harmonia.control.<tier> --config FILE``), waits until every cluster and node has
registered, and records the processes in ``<state_dir>/system.json``; :func:`down` stops
them. Everything lives under one state directory, so several systems (and the tests)
never clash::

    <state_dir>/system.json        processes, addresses (written by up, removed by down)
    <state_dir>/credentials.json   the admin's generated password (mode 0600)
    <state_dir>/session.json       the CLI's cached tokens (mode 0600)
    <state_dir>/root/              root database, signing key, address
    <state_dir>/clusters/<name>/   a cluster manager's database and address
    <state_dir>/nodes/<name>/      a node engine's instances and their logs
    <state_dir>/logs/<process>.log what each process printed

Join tokens reach the processes in their configuration files (mode 0600), never on a
command line. A system brought down and up again keeps its applications: the root and
the cluster managers reload their databases, and the clusters keep their identities.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from harmonia.control.config import (
    ClusterConfig,
    NodeConfig,
    RootConfig,
    TierConfig,
    write_config,
)
from harmonia.control.serve import read_address
from harmonia.model import HarmoniaError, Node, NodeRole, Resources

SYSTEM_FILE = "system.json"
CREDENTIALS_FILE = "credentials.json"
STOP_GRACE_S = 10.0
# A cluster manager that loses its database rejoins with the token in its configuration.
TOKEN_TTL_S = 30 * 24 * 3600


class EmbeddedSystemError(HarmoniaError):
    """The embedded system could not be started, reached or stopped."""


@dataclass
class Process:
    """One tier's process as recorded in ``system.json``."""

    role: str  # root | cluster | node
    name: str
    pid: int
    state_dir: str
    log: str
    url: str = ""
    create_time: float = 0.0  # psutil's, to tell our process from a recycled pid

    def alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            return bool(
                process.is_running()
                and process.status() != psutil.STATUS_ZOMBIE
                and abs(process.create_time() - self.create_time) < 1.0
            )
        except psutil.Error:
            return False


@dataclass
class System:
    state_dir: Path
    root_url: str
    processes: list[Process] = field(default_factory=list)

    @property
    def credentials(self) -> Path:
        return self.state_dir / CREDENTIALS_FILE

    def save(self) -> None:
        data = {
            "root_url": self.root_url,
            "processes": [p.__dict__ for p in self.processes],
        }
        write_private(self.state_dir / SYSTEM_FILE, json.dumps(data, indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> System | None:
        path = state_dir / SYSTEM_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                state_dir,
                str(data["root_url"]),
                [Process(**p) for p in data["processes"]],
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddedSystemError(
                f"{path}: unreadable ({exc}); remove it and run up again"
            ) from exc


@dataclass(frozen=True)
class NodeShape:
    """What each emulated node offers the scheduler."""

    cpu_m: int = 2000
    memory_mib: int = 2048


Progress = Callable[[str], None]


def default_state_dir() -> Path:
    """``$HARMONIA_HOME``, else ``~/.harmonia``."""
    home = os.environ.get("HARMONIA_HOME")
    return Path(home) if home else Path.home() / ".harmonia"


def up(
    state_dir: Path,
    clusters: int = 2,
    nodes_per_cluster: int = 2,
    *,
    node_shape: NodeShape | None = None,
    timeout_s: float = 60.0,
    heartbeat_interval_s: float = 1.0,
    missed_heartbeats: int = 3,
    progress: Progress | None = None,
) -> System:
    """Start a root, ``clusters`` managers and ``clusters × nodes_per_cluster`` engines.

    Returns once every cluster reports all its nodes healthy to the root. Raises
    :class:`EmbeddedSystemError` (after stopping what it started) when a process dies or the
    system is not ready within ``timeout_s``.
    """
    from harmonia.control.root.client import RootClient  # the client pulls in httpx

    if clusters < 1 or nodes_per_cluster < 1:
        raise EmbeddedSystemError("--clusters and --nodes-per-cluster must be at least 1")
    say = progress or (lambda _: None)
    state_dir = state_dir.resolve()
    running = System.load(state_dir)
    if running is not None and any(p.alive() for p in running.processes):
        raise EmbeddedSystemError(
            f"a system is already up in {state_dir} (root {running.root_url}); "
            "run `harmonia down` first"
        )
    shape = node_shape or NodeShape()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    system = System(state_dir, "")
    deadline = time.monotonic() + timeout_s
    try:
        say("starting the root")
        root_dir = state_dir / "root"
        root = _start(
            system,
            "root",
            "root",
            RootConfig(state_dir=root_dir, admin_password_file=system.credentials),
        )
        system.root_url = root.url = _wait_address(root, deadline)
        with RootClient(system.root_url) as client:
            _wait(deadline, root, lambda: _healthy(system.root_url), "the root to answer")
            # The root writes the admin password on its first start only.
            _wait(deadline, root, system.credentials.exists, "the admin credentials")
            login = json.loads(system.credentials.read_text(encoding="utf-8"))
            client.login(login["username"], login["password"])
            names = [f"cluster-{k + 1}" for k in range(clusters)]
            cluster_processes = []
            for name in names:
                say(f"starting cluster manager {name}")
                config = ClusterConfig(
                    state_dir=state_dir / "clusters" / name,
                    name=name,
                    root_url=system.root_url,
                    root_join_token=client.create_cluster_token(ttl_s=TOKEN_TTL_S),
                    node_join_token=secrets.token_urlsafe(24),
                    heartbeat_interval_s=heartbeat_interval_s,
                    missed_heartbeats=missed_heartbeats,
                )
                process = _start(system, "cluster", name, config)
                process.url = _wait_address(process, deadline)
                cluster_processes.append((process, config))
            for process, config in cluster_processes:
                for n in range(nodes_per_cluster):
                    node_name = f"{config.name}-node-{n + 1}"
                    say(f"starting node engine {node_name}")
                    node = Node(
                        name=node_name,
                        cluster=config.name,
                        role=NodeRole.EDGE,
                        capacity=Resources(cpu_m=shape.cpu_m, memory_mib=shape.memory_mib),
                    )
                    engine = _start(
                        system,
                        "node",
                        node_name,
                        NodeConfig(
                            state_dir=state_dir / "nodes" / node_name,
                            node=node,
                            cluster_url=process.url,
                            join_token=config.node_join_token,
                            heartbeat_interval_s=heartbeat_interval_s,
                        ),
                    )
                    engine.url = _wait_address(engine, deadline)
            system.save()
            say("waiting for every cluster and node to register")
            _wait(
                deadline,
                None,
                lambda: _ready(client.clusters(), names, nodes_per_cluster),
                "every cluster and node to register",
                system,
            )
        return system
    except BaseException:
        stop(system)
        raise


def down(state_dir: Path, *, purge: bool = False) -> list[Process]:
    """Stop the system recorded in ``state_dir``: node engines first (they stop their
    instances), then cluster managers, then the root. With ``purge`` the state
    directory is removed afterwards. Returns the processes that were running."""
    state_dir = state_dir.resolve()
    system = System.load(state_dir)
    stopped: list[Process] = []
    if system is not None:
        stopped = [p for p in system.processes if p.alive()]
        stop(system)
        (state_dir / SYSTEM_FILE).unlink(missing_ok=True)
    reap_instances(state_dir)
    if purge and state_dir.exists():
        shutil.rmtree(state_dir)
    return stopped


def stop(system: System) -> None:
    """SIGTERM every live process of ``system`` tier by tier; SIGKILL what is left after
    :data:`STOP_GRACE_S`."""
    for role in ("node", "cluster", "root"):
        tier = [p for p in system.processes if p.role == role and p.alive()]
        for process in tier:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline and any(p.alive() for p in tier):
            _reap(tier)
            time.sleep(0.05)
        for process in tier:
            if process.alive():
                _signal(process, signal.SIGKILL)


def restart(state_dir: Path, name: str, *, timeout_s: float = 30.0) -> Process:
    """Stop process ``name`` of the system in ``state_dir`` (if it runs) and start it again
    with the same configuration; returns it once it listens again."""
    system = System.load(state_dir.resolve())
    if system is None:
        raise EmbeddedSystemError(f"no system in {state_dir}")
    old = next((p for p in system.processes if p.name == name), None)
    if old is None:
        known = ", ".join(p.name for p in system.processes)
        raise EmbeddedSystemError(f"no process {name!r} (known: {known})")
    stop(System(system.state_dir, system.root_url, [old]))
    system.processes.remove(old)
    config_path = Path(old.state_dir) / "config.json"
    config = _CONFIGS[old.role].model_validate_json(config_path.read_text(encoding="utf-8"))
    process = _start(system, old.role, old.name, config)
    process.url = _wait_address(process, time.monotonic() + timeout_s)
    system.save()
    return process


def reap_instances(state_dir: Path) -> int:
    """Kill instance processes left behind under ``state_dir/nodes`` (an engine killed
    with SIGKILL cannot stop its children); returns how many were killed."""
    nodes = (state_dir.resolve() / "nodes").as_posix() + "/"
    killed = 0
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd") or ""
        if cwd.startswith(nodes):
            try:
                process.kill()
                killed += 1
            except psutil.Error:
                pass
    return killed


def status_of(state_dir: Path) -> System | None:
    """The system recorded in ``state_dir`` (``None`` when none was started there)."""
    return System.load(state_dir.resolve())


# -- helpers ----------------------------------------------------------------------------

_CONFIGS: dict[str, type[TierConfig]] = {
    "root": RootConfig,
    "cluster": ClusterConfig,
    "node": NodeConfig,
}


def _start(system: System, role: str, name: str, config: TierConfig) -> Process:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    # A stale address from an earlier run must not be mistaken for this process's.
    (config.state_dir / "address").unlink(missing_ok=True)
    config_path = config.state_dir / "config.json"
    write_config(config_path, config)
    log_path = system.state_dir / "logs" / f"{name}.log"
    module = f"harmonia.control.{role}"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        # posix_spawn, not Popen: the process is not a child this process waits for; in its
        # own session it outlives the `harmonia up` that started it.
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", module, "--config", str(config_path)],
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)
        os.close(devnull)
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = 0.0
    process = Process(role, name, pid, str(config.state_dir), str(log_path), "", created)
    system.processes.append(process)
    system.save()
    return process


def _wait_address(process: Process, deadline: float) -> str:
    """The URL ``process`` listens on, once it does. Its configuration is then pinned to
    that port, so a restart listens where its peers already call."""
    found: list[str] = []

    def ready() -> bool:
        url = read_address(Path(process.state_dir))
        if url:
            found.append(url)
        return bool(url)

    _wait(deadline, process, ready, f"{process.name} to listen")
    url = found[-1]
    config_path = Path(process.state_dir) / "config.json"
    config = _CONFIGS[process.role].model_validate_json(config_path.read_text(encoding="utf-8"))
    port = int(url.rsplit(":", 1)[1])
    if config.port != port:
        write_config(config_path, config.model_copy(update={"port": port}))
    return url


def _wait(
    deadline: float,
    process: Process | None,
    check: Callable[[], Any],
    what: str,
    system: System | None = None,
) -> None:
    delay = 0.02
    last_error = ""
    while True:
        watched = [process] if process is not None else (system.processes if system else [])
        for p in watched:
            if not p.alive():
                raise EmbeddedSystemError(f"{p.role} {p.name} exited; see {p.log}\n{_tail(p.log)}")
        try:
            if check():
                return
        except HarmoniaError as exc:
            last_error = str(exc)
        if time.monotonic() > deadline:
            hint = f" (last error: {last_error})" if last_error else ""
            raise EmbeddedSystemError(f"timed out waiting for {what}{hint}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _ready(clusters: list[dict[str, Any]], names: list[str], nodes: int) -> bool:
    by_name = {c.get("name"): c for c in clusters}
    return all(
        name in by_name
        and by_name[name].get("status") == "active"
        and int(by_name[name].get("healthy_nodes", 0)) >= nodes
        for name in names
    )


def _reap(processes: list[Process]) -> None:
    """Collect the exit status of those that are our children (started by this process),
    so they do not linger as zombies."""
    for process in processes:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(process.pid, os.WNOHANG)


def _signal(process: Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signum)


def _tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (it may hold
    secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)


__all__ = [
    "CREDENTIALS_FILE",
    "EmbeddedSystemError",
    "NodeShape",
    "Process",
    "System",
    "default_state_dir",
    "down",
    "reap_instances",
    "restart",
    "status_of",
    "up",
    "write_private",
]
