"""``harmonia up | down | deploy | status | scale | undeploy | logs``: the control plane.

Every command takes ``--state-dir`` (default ``$HARMONIA_HOME`` or ``~/.harmonia``): the
embedded system's processes, the admin's credentials and the CLI's cached tokens live
there, so several systems (and the tests) never clash. The CLI logs in with the stored
credentials and keeps the tokens in ``session.json`` (mode 0600), refreshing them when
they expire.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from harmonia.cli.errors import reports_errors, stderr
from harmonia.cli.files import read_document
from harmonia.control import embedded
from harmonia.model import FieldError, HarmoniaError, InputError
from harmonia.model.sla import parse_sla

if TYPE_CHECKING:
    from harmonia.control.root.client import RootClient

SESSION_FILE = "session.json"
ENDED = {"FAILED", "STOPPED"}

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="The system's directory (default: $HARMONIA_HOME or ~/.harmonia).",
        show_default=False,
    ),
]


def _dir(state_dir: Path | None) -> Path:
    return (state_dir or embedded.default_state_dir()).expanduser()


def connect(state_dir: Path) -> RootClient:
    """A logged-in client for the system in ``state_dir``: the cached session's tokens
    when they still work (the client refreshes an expired access token itself), else a
    login with the stored admin credentials."""
    # Imported here: the HTTP client stack is not needed by the other commands.
    from harmonia.control.root.client import RootClient, RootError

    system = embedded.status_of(state_dir)
    if system is None:
        raise HarmoniaError(f"no system in {state_dir}; start one with `harmonia up`")
    session_path = state_dir / SESSION_FILE
    try:
        session = json.loads(session_path.read_text(encoding="utf-8"))
        tokens = (str(session["access_token"]), str(session["refresh_token"]))
    except (OSError, ValueError, KeyError, TypeError):
        tokens = None  # no usable session file: log in
    if tokens is not None:
        client = RootClient(system.root_url, tokens[0], refresh_token=tokens[1])
        try:
            client.clusters()  # proves the tokens (refreshing them if needed)
            _save_session(session_path, client)
            return client
        except RootError as exc:
            client.close()
            if exc.status is None:
                raise  # the root is unreachable: logging in would not help
    try:
        login = json.loads(system.credentials.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HarmoniaError(f"no readable credentials at {system.credentials} ({exc})") from exc
    client = RootClient(system.root_url)
    try:
        client.login(login["username"], login["password"])
    except RootError:
        client.close()
        raise
    _save_session(session_path, client)
    return client


def _save_session(path: Path, client: RootClient) -> None:
    data = {"access_token": client.token, "refresh_token": client.refresh_token}
    embedded.write_private(path, json.dumps(data))


def register(app: typer.Typer) -> None:
    """Add the control plane's commands to the ``harmonia`` application."""

    @app.command()
    @reports_errors
    def up(
        clusters: Annotated[int, typer.Option("--clusters", min=1, help="Cluster managers.")] = 2,
        nodes_per_cluster: Annotated[
            int, typer.Option("--nodes-per-cluster", min=1, help="Node engines per cluster.")
        ] = 2,
        node_cpu_m: Annotated[
            int, typer.Option("--node-cpu-m", min=1, help="CPU each node offers (millicores).")
        ] = 2000,
        node_memory_mib: Annotated[
            int, typer.Option("--node-memory-mib", min=1, help="Memory each node offers.")
        ] = 2048,
        timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds.")] = 60.0,
        state_dir: StateDir = None,
    ) -> None:
        """Start a root, cluster managers and node engines on this machine (loopback)."""
        where = _dir(state_dir)
        with stderr.status("starting Harmonia ...") as status:
            system = embedded.up(
                where,
                clusters,
                nodes_per_cluster,
                node_shape=embedded.NodeShape(node_cpu_m, node_memory_mib),
                timeout_s=timeout,
                progress=lambda text: status.update(text + " ..."),
            )
        console = Console()
        console.print(
            f"Harmonia is up: {clusters} cluster(s) × {nodes_per_cluster} node(s)\n"
            f"  API:         {system.root_url}  (OpenAPI: {system.root_url}/docs)\n"
            f"  credentials: {system.credentials}\n"
            f"  logs:        {where / 'logs'}\n"
            f"Stop it with: harmonia down" + (f" --state-dir {where}" if state_dir else ""),
            highlight=False,
        )

    @app.command()
    @reports_errors
    def down(
        purge: Annotated[
            bool, typer.Option("--purge", help="Also delete the state directory.")
        ] = False,
        state_dir: StateDir = None,
    ) -> None:
        """Stop the system started by `harmonia up`."""
        where = _dir(state_dir)
        stopped = embedded.down(where, purge=purge)
        if stopped:
            Console().print(f"stopped {len(stopped)} process(es) of {where}", highlight=False)
        else:
            Console().print(f"nothing was running in {where}", highlight=False)

    @app.command()
    @reports_errors
    def deploy(
        descriptor: Annotated[Path, typer.Argument(help="SLA descriptor, JSON or YAML.")],
        wait: Annotated[
            float,
            typer.Option("--wait", min=0, help="Seconds to wait for RUNNING (0: don't)."),
        ] = 30.0,
        state_dir: StateDir = None,
    ) -> None:
        """Deploy the applications of an SLA descriptor."""
        data = read_document(descriptor)
        parse_sla(data, str(descriptor))  # every problem at once, before any call
        assert isinstance(data, dict)  # parse_sla accepts nothing else
        with connect(_dir(state_dir)) as client:
            created = client.deploy(data)
            ids = [app["applicationID"] for app in created]
            for app_data in created:
                Console().print(
                    f"application {app_data['application_name']} ({app_data['applicationID']}): "
                    f"{len(app_data.get('microservices', []))} service(s)",
                    highlight=False,
                )
            if wait > 0:
                instances = _wait_running(client, ids, wait)
                running = sum(i["state"] == "RUNNING" for i in instances)
                Console().print(
                    f"{running}/{len(instances)} instance(s) RUNNING (see `harmonia status`)",
                    highlight=False,
                )

    @app.command()
    @reports_errors
    def status(
        application: Annotated[
            str | None, typer.Argument(help="Application name or id (default: all).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        state_dir: StateDir = None,
    ) -> None:
        """Show the instances: service, cluster, node, state, uptime."""
        with connect(_dir(state_dir)) as client:
            app_id = _application_id(client, application) if application else None
            instances = client.instances(app_id)
            if as_json:
                keys = ("instance_id", "service", "cluster", "node", "state", "pid", "restarts")
                typer.echo(
                    json.dumps({"instances": [{k: i.get(k) for k in keys} for i in instances]})
                )
                return
            _print_instances(instances)

    @app.command()
    @reports_errors
    def scale(
        service: Annotated[str, typer.Argument(help="'application.service' or a service id.")],
        replicas: Annotated[int, typer.Argument(min=0, help="Instances wanted.")],
        state_dir: StateDir = None,
    ) -> None:
        """Set the number of instances of a service."""
        with connect(_dir(state_dir)) as client:
            service_id = _service_id(client, service)
            result = client.scale(service_id, replicas)
            Console().print(
                f"{service}: {replicas} instance(s) wanted, "
                f"{len(result.get('instance_list', []))} now",
                highlight=False,
            )

    @app.command()
    @reports_errors
    def undeploy(
        application: Annotated[str, typer.Argument(help="Application name or id.")],
        state_dir: StateDir = None,
    ) -> None:
        """Stop and remove an application and its services."""
        with connect(_dir(state_dir)) as client:
            app_id = _application_id(client, application)
            client.delete_application(app_id)
            Console().print(f"undeployed {application}", highlight=False)

    @app.command()
    @reports_errors
    def logs(
        instance: Annotated[str, typer.Argument(help="Instance id (see `harmonia status`).")],
        stream: Annotated[str, typer.Option("--stream", help="stdout or stderr.")] = "stdout",
        tail: Annotated[int, typer.Option("--tail", min=1, help="Last N lines.")] = 100,
        state_dir: StateDir = None,
    ) -> None:
        """Print an instance's output."""
        if stream not in ("stdout", "stderr"):
            raise InputError([FieldError("--stream", "must be stdout or stderr")])
        with connect(_dir(state_dir)) as client:
            typer.echo(client.logs(instance, stream, tail), nl=False)


# -- helpers ----------------------------------------------------------------------------


def _application_id(client: RootClient, name_or_id: str) -> str:
    applications = client.applications()
    for app_data in applications:
        if name_or_id in (app_data["applicationID"], app_data["application_name"]):
            return str(app_data["applicationID"])
    known = ", ".join(sorted(a["application_name"] for a in applications)) or "none"
    raise HarmoniaError(f"no application {name_or_id!r} (deployed: {known})")


def _service_id(client: RootClient, key_or_id: str) -> str:
    for app_data in client.applications():
        for service in client.services(app_data["applicationID"]):
            key = f"{app_data['application_name']}.{service['microservice_name']}"
            if key_or_id in (service["microserviceID"], key):
                return str(service["microserviceID"])
    raise HarmoniaError(f"no service {key_or_id!r}; name it 'application.service' or by id")


def _wait_running(client: RootClient, app_ids: list[str], seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    instances: list[dict[str, Any]] = []
    with stderr.status("waiting for the instances to run ..."):
        while True:
            instances = [i for a in app_ids for i in client.instances(a)]
            if instances and all(i["state"] == "RUNNING" for i in instances):
                return instances
            if time.monotonic() > deadline:
                stderr.print(f"not all instances are RUNNING after {seconds:g} s")
                return instances
            time.sleep(0.2)


def _print_instances(instances: list[dict[str, Any]]) -> None:
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("instance", "service", "cluster", "node", "state", "uptime", "restarts"):
        table.add_column(column, no_wrap=column != "service")
    now = time.time()
    for i in sorted(instances, key=lambda i: (i["service"], i["number"])):
        started = i.get("started_at")
        running = i["state"] == "RUNNING" and started
        state_style = {"RUNNING": "green", "FAILED": "red"}.get(i["state"], "yellow")
        table.add_row(
            i["instance_id"],
            i["service"],
            i.get("cluster") or "-",
            i.get("node") or "-",
            f"[{state_style}]{i['state']}[/]",
            _duration(now - float(started)) if running and started else "-",
            str(i.get("restarts", 0)),
        )
    console = Console()
    if not console.is_terminal:
        # Piped or captured (make, a log file): no terminal width to fit, keep ids whole.
        console = Console(width=200)
    if instances:
        console.print(table)
    else:
        console.print("no instances")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


__all__ = ["connect", "register"]
