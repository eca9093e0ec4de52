"""``harmonia simulate``, ``harmonia compare`` and ``harmonia traces generate``.

Thin glue over :mod:`harmonia.sim` and :mod:`harmonia.traces`: build a scenario from a
file or from flags, run it (several policies in parallel processes for ``compare``),
write the result folder and the HTML report, print a summary.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from harmonia.cli import files
from harmonia.cli.errors import reports_errors, stderr
from harmonia.model import FieldError, InputError
from harmonia.sim import Scenario, SimResult, parse_scenario, run_scenario, write_result
from harmonia.sim.report import HEADLINE, Run, lookup, write_report
from harmonia.sim.scenario import TRACE_FORMATS
from harmonia.traces.synthetic import generate as generate_trace

traces_app = typer.Typer(help="Work with workload traces.", no_args_is_help=True)
ARRIVALS = ("poisson", "diurnal", "bursty")


def load_or_build_scenario(
    scenario_file: Path | None,
    *,
    trace: Path | None,
    trace_format: str | None,
    nodes: int | None,
    nodes_file: Path | None,
    clusters: int | None,
    policy: str | None,
    seed: int | None,
    horizon_s: float | None,
    skip_bad_lines: bool,
) -> Scenario:
    """A scenario from its file with flags overriding fields, or from flags alone."""
    data: dict[str, Any] = {}
    source = "command line"
    base_dir: Path | None = None
    if scenario_file is not None:
        loaded = files.read_document(scenario_file)
        if not isinstance(loaded, dict):
            raise InputError([FieldError("", "must be an object")], str(scenario_file))
        data = loaded
        source = str(scenario_file)
        base_dir = scenario_file.parent
    if trace is not None or trace_format is not None or skip_bad_lines:
        section = dict(data.get("trace") or {})
        if trace is not None:
            section["path"] = str(trace.resolve())
        if trace_format is not None:
            section["format"] = trace_format
        if skip_bad_lines:
            section["skip_bad_lines"] = True
        data["trace"] = section
    if nodes is not None or nodes_file is not None or clusters is not None:
        section = dict(data.get("topology") or {})
        if nodes is not None:
            section["nodes"] = nodes
            section.pop("nodes_file", None)
        if nodes_file is not None:
            section["nodes_file"] = str(nodes_file.resolve())
            section.pop("nodes", None)
        if clusters is not None:
            section["clusters"] = clusters
        data["topology"] = section
    for key, value in (("policy", policy), ("seed", seed), ("horizon_s", horizon_s)):
        if value is not None:
            data[key] = value
    if scenario_file is None and "trace" not in data:
        raise InputError(
            [FieldError("trace", "give a SCENARIO file or --trace and --trace-format")]
        )
    return parse_scenario(data, source, base_dir)


def register(app: typer.Typer) -> None:
    """Add the simulator's commands to the ``harmonia`` application."""

    @app.command()
    @reports_errors
    def simulate(
        scenario_file: Annotated[
            Path | None, typer.Argument(help="Scenario YAML/JSON (flags override its fields).")
        ] = None,
        trace: Annotated[Path | None, typer.Option("--trace", help="Trace file or folder.")] = None,
        trace_format: Annotated[
            str | None, typer.Option("--trace-format", help=" | ".join(TRACE_FORMATS))
        ] = None,
        nodes: Annotated[
            int | None, typer.Option("--nodes", min=1, help="Generate N nodes.")
        ] = None,
        nodes_file: Annotated[
            Path | None, typer.Option("--nodes-file", help="Node list instead of --nodes.")
        ] = None,
        clusters: Annotated[int | None, typer.Option("--clusters", min=1)] = None,
        policy: Annotated[str | None, typer.Option("--policy", help="Policy name.")] = None,
        seed: Annotated[int | None, typer.Option("--seed", min=0)] = None,
        horizon: Annotated[
            float | None, typer.Option("--horizon", help="Stop at this simulated second.")
        ] = None,
        skip_bad_lines: Annotated[
            bool, typer.Option("--skip-bad-lines", help="Count malformed trace lines, go on.")
        ] = False,
        out: Annotated[Path, typer.Option("--out", help="Result folder.")] = Path("sim-out"),
    ) -> None:
        """Replay a trace on simulated infrastructure with one policy."""
        scenario = load_or_build_scenario(
            scenario_file,
            trace=trace,
            trace_format=trace_format,
            nodes=nodes,
            nodes_file=nodes_file,
            clusters=clusters,
            policy=policy,
            seed=seed,
            horizon_s=horizon,
            skip_bad_lines=skip_bad_lines,
        )
        result = _run_with_progress(scenario, stderr)
        written = write_result(result, out)
        report = write_report(
            [Run(scenario.policy, result.metrics, result.timeseries)],
            out / "report.html",
            title=f"{scenario.name}: {scenario.policy}",
        )
        console = Console()
        console.print(_summary([(scenario.policy, result)]))
        paths = ", ".join(str(p) for p in [*written, report])
        console.print(f"wrote {paths}", markup=False, highlight=False)

    @app.command()
    @reports_errors
    def compare(
        scenario_file: Annotated[Path, typer.Argument(help="Scenario YAML/JSON.")],
        policies: Annotated[str, typer.Option("--policies", help="Comma-separated policy names.")],
        out: Annotated[Path, typer.Option("--out", help="Result folder.")] = Path("compare-out"),
        jobs: Annotated[
            int, typer.Option("--jobs", min=0, help="Parallel processes (0: one per CPU).")
        ] = 0,
    ) -> None:
        """Run one scenario under several policies side by side and report them together."""
        names = [p.strip() for p in policies.split(",") if p.strip()]
        if len(names) < 1 or len(set(names)) != len(names):
            raise InputError(
                [FieldError("--policies", "give distinct policy names, comma-separated")]
            )
        scenario = load_or_build_scenario(
            scenario_file,
            trace=None,
            trace_format=None,
            nodes=None,
            nodes_file=None,
            clusters=None,
            policy=None,
            seed=None,
            horizon_s=None,
            skip_bad_lines=False,
        )
        scenarios = [
            parse_scenario({**scenario.model_dump(mode="json"), "policy": n}) for n in names
        ]
        workers = min(len(names), jobs or os.cpu_count() or 1)
        results: list[SimResult] = []
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        ) as progress:
            task = progress.add_task(f"running {len(names)} policies on {workers} processes")
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(run_scenario, scenarios))
            progress.update(task, completed=1)
        runs = []
        for name, result in zip(names, results, strict=True):
            write_result(result, out / name)
            runs.append(Run(name, result.metrics, result.timeseries))
        report = write_report(
            runs, out / "report.html", title=f"{scenario.name}: {', '.join(names)}"
        )
        (out / "comparison.json").write_text(
            json.dumps({name: r.metrics for name, r in zip(names, results, strict=True)}, indent=2)
            + "\n",
            encoding="utf-8",
        )
        console = Console()
        console.print(_summary(list(zip(names, results, strict=True))))
        console.print(f"wrote {out}/ and {report}", markup=False, highlight=False)

    @traces_app.command("generate")
    @reports_errors
    def traces_generate(
        trace_format: Annotated[str, typer.Option("--format", help=" | ".join(TRACE_FORMATS))],
        out: Annotated[Path, typer.Option("--out", help="File (Borg) or folder (others).")],
        tasks: Annotated[int, typer.Option("--tasks", min=1, help="Tasks to generate.")] = 10_000,
        seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
        arrival: Annotated[str, typer.Option("--arrival", help=" | ".join(ARRIVALS))] = "poisson",
        lc_fraction: Annotated[
            float, typer.Option("--lc-fraction", min=0.0, max=1.0, help="Share of LC tasks.")
        ] = 0.2,
        horizon: Annotated[
            float, typer.Option("--horizon", min=1.0, help="Trace length in seconds.")
        ] = 86_400.0,
    ) -> None:
        """Write a synthetic trace in a public format (for tests, demos and benchmarks)."""
        if arrival not in ARRIVALS:
            raise InputError([FieldError("--arrival", f"must be one of {', '.join(ARRIVALS)}")])
        written = generate_trace(
            trace_format,
            out,
            tasks=tasks,
            seed=seed,
            arrival=arrival,
            lc_fraction=lc_fraction,
            horizon_s=horizon,
        )
        paths = ", ".join(str(p) for p in written.paths)
        Console().print(
            f"wrote {written.tasks} tasks, {written.events} events "
            f"({written.lc_tasks} LC) to {paths}",
            markup=False,
            highlight=False,
        )

    app.add_typer(traces_app, name="traces")


def _run_with_progress(scenario: Scenario, stderr: Console) -> SimResult:
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task(f"simulating {scenario.name} with {scenario.policy}")

        def report(simulated_s: float) -> None:
            progress.update(
                task,
                description=f"simulating {scenario.name} with {scenario.policy}: "
                f"{simulated_s / 3600:,.1f} h simulated",
            )

        return run_scenario(scenario, progress=report)


def _summary(runs: list[tuple[str, SimResult]]) -> Table:
    table = Table(title="simulation")
    table.add_column("metric")
    for name, _ in runs:
        table.add_column(Text(name), justify="right")
    for dotted, label in HEADLINE:
        values = [lookup(result.metrics, dotted) for _, result in runs]
        if all(v is None for v in values):
            continue
        table.add_row(label, *(_cell(v) for v in values))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
