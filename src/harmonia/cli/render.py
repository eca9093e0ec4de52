"""Human-readable rendering of errors, decisions and policies with rich."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from harmonia.model import InputError
from harmonia.sched import Decision, Profile

MAX_ROWS = 50


def errors_text(error: InputError) -> Text:
    count = len(error.errors)
    head = f"{error.source}: " if error.source else ""
    text = Text(f"{head}{count} problem{'s' if count != 1 else ''}\n", style="bold red")
    for item in error.errors:
        text.append("  ")
        if item.path:
            text.append(item.path, style="bold")
            text.append(": ")
        text.append(f"{item.message}\n")
    return text


def decisions_table(decisions: list[Decision], *, explain: bool) -> Table:
    table = Table(title="placements", show_lines=explain)
    table.add_column("request")
    table.add_column("node")
    table.add_column("feasible", justify="right")
    table.add_column("why" if explain else "reason")
    for decision in decisions[:MAX_ROWS]:
        node = Text(decision.node) if decision.node else Text(decision.code.value, style="red")
        # User-supplied text goes in as Text, never as rich markup.
        table.add_row(
            Text(decision.request_id),
            node,
            f"{decision.nodes_feasible}/{decision.nodes_total}",
            Text(_why(decision, explain)),
        )
    if len(decisions) > MAX_ROWS:
        table.caption = f"first {MAX_ROWS} of {len(decisions)} requests; all are in the JSON"
    return table


def _why(decision: Decision, explain: bool) -> str:
    lines = list(decision.reasons)
    if explain:
        for score in decision.top_scores[:3]:
            parts = ", ".join(f"{name} {value:g}" for name, value in score.by_plugin.items())
            lines.append(f"{score.node}: {score.total:g} ({parts})")
        for rejection in decision.rejections:
            lines.append(f"{rejection.plugin} rejected {rejection.count}")
    return "\n".join(lines)


def policies_table(profiles: list[Profile]) -> Table:
    table = Table(title="policies")
    table.add_column("name")
    table.add_column("filters")
    table.add_column("scores (weight)")
    table.add_column("description")
    for profile in profiles:
        table.add_row(
            Text(profile.name),
            Text(", ".join(p.name for p in profile.filters)),
            Text(", ".join(f"{p.name} ×{profile.weights[p.name]}" for p in profile.scores)),
            Text(profile.description),
        )
    return table
