"""``harmonia``: the command line.

Exit codes: 0 success; 2 invalid input or usage (every problem is printed, with the
JSON path of the field at fault); 3 ``schedule --fail-unschedulable`` left a request
unplaced. Machine-readable output goes to ``--out`` or standard output; human-readable
summaries go to standard error when standard output carries JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from harmonia import __version__
from harmonia.cli import batch as batch_commands
from harmonia.cli import control as control_commands
from harmonia.cli import files
from harmonia.cli import simulate as simulate_commands
from harmonia.cli.errors import reports_errors, stderr
from harmonia.cli.render import decisions_table, policies_table
from harmonia.model import FieldError, InputError
from harmonia.model.documents import NodeList
from harmonia.model.generate import generate_clusters, generate_nodes
from harmonia.model.sla import parse_sla
from harmonia.sched import ClusterState, get_policy, policy_names, scheduler_for
from harmonia.sched.policies import broken_policies
from harmonia.sched.rtt import MatrixRtt

EXIT_UNSCHEDULABLE = 3
PROGRESS_THRESHOLD = 20_000

app = typer.Typer(
    name="harmonia",
    help="Harmonia: orchestration and scheduling of mixed services across edge and cloud.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
nodes_app = typer.Typer(help="Work with node lists.", no_args_is_help=True)
app.add_typer(nodes_app, name="nodes")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"harmonia {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Harmonia: orchestration and scheduling of mixed services across edge and cloud."""


@app.command()
@reports_errors
def schedule(
    nodes: Annotated[Path, typer.Option("--nodes", help="Node list, YAML or JSON.")],
    workload: Annotated[
        Path,
        typer.Option("--workload", help="SLA descriptor, or a list of requests (JSON or YAML)."),
    ],
    policy: Annotated[str, typer.Option("--policy", help="Policy name (see `policies`).")] = (
        "default"
    ),
    explain: Annotated[
        bool, typer.Option("--explain", help="Add rejections per node and top scores.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON result here, not to stdout.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of randomized policies.")] = 0,
    fail_unschedulable: Annotated[
        bool,
        typer.Option("--fail-unschedulable", help="Exit 3 when any request stays unplaced."),
    ] = False,
    rtt: Annotated[
        Path | None,
        typer.Option(
            "--rtt",
            help="RTT matrix in ms: one whitespace-separated row per line (needs --rtt-index).",
        ),
    ] = None,
    rtt_index: Annotated[
        Path | None,
        typer.Option("--rtt-index", help='JSON object {"node name": row} for --rtt.'),
    ] = None,
) -> None:
    """Place every request of WORKLOAD on the NODES with one policy, in order."""
    if (rtt is None) != (rtt_index is None):
        given, missing = ("--rtt", "--rtt-index") if rtt_index is None else ("--rtt-index", "--rtt")
        raise InputError([FieldError(missing, f"is needed with {given}")], "options")
    node_list = files.read_nodes(nodes)
    requests = files.read_workload(workload)
    profile = get_policy(policy)
    state = ClusterState(node_list.nodes)
    if rtt is not None and rtt_index is not None:
        # Latency bounds (delay labels, latency constraints to nodes and services) are
        # checked against this matrix; without it they are refused as unresolvable.
        topology = files.read_rtt(rtt, rtt_index, state.names)
        state.attach_rtt_source(MatrixRtt.from_topology(topology))
    # Delegated policies (rom, ldp) schedule root → cluster → node; the others flat.
    scheduler = scheduler_for(state, profile, seed=seed)

    started = time.monotonic()
    if len(requests) >= PROGRESS_THRESHOLD and stderr.is_terminal:
        with Progress(console=stderr, transient=True) as progress:
            task = progress.add_task("scheduling", total=len(requests))
            plan = scheduler.schedule_many(
                requests, explain=explain, on_decision=lambda _: progress.advance(task)
            )
    else:
        plan = scheduler.schedule_many(requests, explain=explain)
    seconds = time.monotonic() - started

    result = {
        "policy": profile.name,
        "placements": [d.to_dict(explain=explain) for d in plan.decisions],
        "stats": {
            "requests": len(plan.decisions),
            "scheduled": plan.scheduled,
            "unschedulable": plan.unschedulable,
            "seconds": round(seconds, 6),
        },
    }
    summary_console = stderr
    if out is None:
        typer.echo(json.dumps(result, indent=2))
    else:
        files.write_document(out, result)
        summary_console = Console()
    summary_console.print(decisions_table(plan.decisions, explain=explain))
    summary_console.print(
        f"{plan.scheduled} scheduled, {plan.unschedulable} unschedulable "
        f"on {len(node_list.nodes)} nodes with policy {profile.name!r} in {seconds:.3f} s"
        + (f"; written to {out}" if out else ""),
        markup=False,
        highlight=False,
    )
    if fail_unschedulable and plan.unschedulable:
        raise typer.Exit(EXIT_UNSCHEDULABLE)


@nodes_app.command("generate")
@reports_errors
def nodes_generate(
    count: Annotated[int, typer.Option("--count", min=1, help="Number of nodes.")],
    out: Annotated[Path, typer.Option("--out", help="File to write (.yaml/.yml or .json).")],
    clusters: Annotated[int, typer.Option("--clusters", min=1, help="Number of clusters.")] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
) -> None:
    """Write a realistic heterogeneous edge-cloud node list."""
    node_list = NodeList(
        generate_nodes(count, clusters=clusters, seed=seed), generate_clusters(clusters)
    )
    files.write_document(out, files.node_document(node_list))
    classes: dict[str, int] = {}
    for node in node_list.nodes:
        classes[node.node_class] = classes.get(node.node_class, 0) + 1
    mix = ", ".join(f"{n} {name}" for name, n in sorted(classes.items()))
    Console().print(
        f"wrote {count} nodes in {clusters} cluster(s) to {out} ({mix})",
        markup=False,
        highlight=False,
    )


@app.command()
def policies() -> None:
    """List the scheduling policies, built-in and installed through entry points."""
    Console().print(policies_table([get_policy(name) for name in policy_names()]))
    for message in broken_policies().values():
        stderr.print(Text.assemble(("warning: ", "bold yellow"), message))


@app.command()
@reports_errors
def validate(
    descriptor: Annotated[Path, typer.Argument(help="SLA descriptor, JSON or YAML.")],
) -> None:
    """Check an SLA descriptor; print every problem with its JSON path."""
    sla = parse_sla(files.read_document(descriptor), str(descriptor))
    requests = files.requests_of(sla, descriptor)
    apps = len(sla.applications)
    services = sum(len(a.microservices) for a in sla.applications)
    Console().print(
        f"{descriptor}: valid — {apps} application(s), {services} microservice(s), "
        f"{len(requests)} instance(s)",
        markup=False,
        highlight=False,
    )


simulate_commands.register(app)
control_commands.register(app)
batch_commands.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
