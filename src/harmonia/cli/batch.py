"""``harmonia place-batch``: place batches of long-running containers onto identical nodes
with an interference-aware (or baseline) policy, and write the placements as JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from harmonia.cli.errors import reports_errors, stderr
from harmonia.model import FieldError, InputError
from harmonia.sched.interference.data import Profile, load_batches, load_profile, load_rules
from harmonia.sched.interference.placement import place, policy_names
from harmonia.sched.interference.table import InterferenceTable

MODEL_KINDS = ("gbr", "forest")


def parse_rows(text: str, available: int) -> list[int]:
    """``"0-29"``, ``"3"``, ``"0,2,5-7"`` → row numbers, each checked against the file."""
    rows: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                first_text, last_text = part.split("-", 1)
                first, last = int(first_text), int(last_text)
            else:
                first = last = int(part)
        except ValueError:
            raise InputError(
                [FieldError("--rows", f"{part!r} is not a row or a range like 0-29")], "options"
            ) from None
        if first < 0 or last < first:
            raise InputError(
                [FieldError("--rows", f"{part!r}: ranges run from a low row to a higher one")],
                "options",
            )
        if last >= available:
            raise InputError(
                [FieldError("--rows", f"row {last} is past the file's {available} rows")],
                "options",
            )
        rows.extend(range(first, last + 1))
    return rows


def read_profile_or_table(path: Path) -> InterferenceTable | Profile:
    """A saved :class:`InterferenceTable`, or else a profiling sample to fit one on."""
    if not path.is_file():
        raise InputError([FieldError("--profile", "no such file")], str(path))
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                is_table = "configs" in data.files and "per_container" in data.files
        except (OSError, ValueError) as exc:
            raise InputError(
                [FieldError("--profile", f"not an .npz file: {exc}")], str(path)
            ) from None
        if is_table:
            return InterferenceTable.load(path)
    return load_profile(path)


def register(app: typer.Typer) -> None:
    """Add ``place-batch`` and ``fit-interference`` to the ``harmonia`` application."""

    @app.command("fit-interference")
    @reports_errors
    def fit_interference(
        profile: Annotated[
            Path, typer.Option("--profile", help="Profiling sample (.npz as Metis's, or .csv).")
        ],
        out: Annotated[Path, typer.Option("--out", help="Table file to write (.npz).")],
        model: Annotated[str, typer.Option("--model", help="gbr | forest")] = "gbr",
        capacity: Annotated[int, typer.Option("--capacity", min=1)] = 8,
        folds: Annotated[int, typer.Option("--folds", min=0, help="CV folds (0: none).")] = 5,
        seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    ) -> None:
        """Fit a throughput model on a profiling sample, report its cross-validated error,
        and save the table of every node configuration (for place-batch and the
        `interference` scheduling policy via HARMONIA_INTERFERENCE_TABLE)."""
        if model not in MODEL_KINDS:
            raise InputError(
                [FieldError("--model", f"must be one of {', '.join(MODEL_KINDS)}")], "options"
            )
        from harmonia.sched.interference.model import fit_table  # sklearn: load late

        sample = load_profile(profile, capacity=capacity)
        table = fit_table(sample, kind=model, capacity=capacity, seed=seed, cv_folds=folds)
        table.save(out)
        cv = table.meta.get("cv")
        typer.echo(
            json.dumps(
                {
                    "table": str(out),
                    "configurations": len(table.configs),
                    "measured": int(table.measured.sum()),
                    "cv": cv,
                },
                indent=2,
            )
        )

    @app.command("place-batch")
    @reports_errors
    def place_batch(
        profile: Annotated[
            Path,
            typer.Option(
                "--profile", help="Profiling sample (.npz/.csv; a model is fitted) or saved table."
            ),
        ],
        batches: Annotated[
            Path, typer.Option("--batches", help="Batches .npz (rows of per-app counts).")
        ],
        nodes: Annotated[int, typer.Option("--nodes", help="Number of identical nodes.")],
        policy: Annotated[str, typer.Option("--policy", help=" | ".join(policy_names()))],
        out: Annotated[Path, typer.Option("--out", help="JSON file to write.")],
        rows: Annotated[str, typer.Option("--rows", help="Rows to place: 0-29, 3, 0,2,5-7.")] = (
            "0"
        ),
        capacity: Annotated[int, typer.Option("--capacity", help="Containers per node.")] = 8,
        rules: Annotated[
            Path | None,
            typer.Option("--rules", help="Interference rules CSV (Metis interference_applist)."),
        ] = None,
        model: Annotated[
            str, typer.Option("--model", help="Regressor when fitting: gbr | forest.")
        ] = "gbr",
        time_limit: Annotated[
            float, typer.Option("--time-limit", help="Seconds per batch for the solvers.")
        ] = 10.0,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Seed for tie-breaking.")] = 0,
    ) -> None:
        """Place batches of containers on NODES nodes and write each placement as JSON."""
        problems = []
        if policy not in policy_names():
            known = ", ".join(policy_names())
            problems.append(FieldError("--policy", f"unknown policy {policy!r}; known: {known}"))
        if model not in MODEL_KINDS:
            problems.append(FieldError("--model", f"must be one of {', '.join(MODEL_KINDS)}"))
        if nodes < 1:
            problems.append(FieldError("--nodes", f"must be >= 1, not {nodes}"))
        if capacity < 1:
            problems.append(FieldError("--capacity", f"must be >= 1, not {capacity}"))
        if time_limit <= 0:
            problems.append(FieldError("--time-limit", f"must be > 0, not {time_limit}"))
        if problems:
            raise InputError(problems, "options")
        source = read_profile_or_table(profile)
        matrix = load_batches(batches, apps=source.apps)
        chosen = parse_rows(rows, matrix.shape[0])
        rule_list = load_rules(rules, apps=source.apps, capacity=capacity) if rules else []
        if isinstance(source, InterferenceTable):
            table = source
        else:
            stderr.print(f"fitting a {model} model on {profile} …", markup=False, highlight=False)
            from harmonia.sched.interference.model import fit_table  # sklearn: load late

            table = fit_table(source, kind=model, capacity=capacity, cv_folds=0)
        results = []
        started = time.monotonic()
        for done, row in enumerate(chosen, 1):
            placement = place(
                matrix[row],
                nodes,
                capacity,
                policy,
                table=table,
                rules=rule_list,
                time_limit_s=time_limit,
                seed=seed,
            )
            results.append({"row": row, **placement.to_dict()})
            if len(chosen) > 1:
                stderr.print(
                    f"row {row} ({done}/{len(chosen)}): throughput "
                    f"{placement.modelled_throughput:.4f}, {placement.violations} violations, "
                    f"{placement.seconds:.2f} s",
                    markup=False,
                    highlight=False,
                )
        out.write_text(json.dumps({"policy": policy, "nodes": nodes, "rows": results}) + "\n")
        mean = float(np.mean([r["modelled_throughput"] for r in results]))
        stderr.print(
            f"{len(results)} batch(es) placed with {policy!r} on {nodes} nodes in "
            f"{time.monotonic() - started:.2f} s; mean modelled throughput {mean:.4f}; "
            f"written to {out}",
            markup=False,
            highlight=False,
        )
