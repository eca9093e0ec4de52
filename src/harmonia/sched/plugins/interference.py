"""Interference: prefer the node where one more long-running container adds the most
modelled throughput.

After Metis (Wang et al., SC'20): the throughput of co-located long-running containers
depends on which applications share the node. The plugin reads an
:class:`~harmonia.sched.interference.table.InterferenceTable` (per-container throughput of
every node configuration, measured or modelled) and scores a node by the marginal gain in
node throughput from adding one container of the request's application to the node's
current configuration:

    gain(node) = T(counts(node) + e_app) - T(counts(node))

normalized to 0..100 over the feasible nodes (the best gain 100, the worst 0; all equal
→ 100). A node whose configuration would exceed the table's capacity scores 0.

It applies to requests of QoS class ``LRA`` that name their profiled application with
the label ``harmonia.io/interference-app`` (an application name of the table, or its
0-based index); for other requests ``pre_score`` answers ``SKIP``. A label that names no
profiled application refuses the request in ``pre_filter`` (``UNRESOLVABLE``), naming it.

**Where the counts come from.** A node's configuration is read from
:class:`~harmonia.sched.state.ClusterState`'s per-service instance counts
(``counts_of``): the plugin remembers which application each service was labelled with
(from the requests it sees, or from ``services`` given up front) and sums the counts of
an application's services. The state, not the plugin, is the authority on what runs
where: hosts release instances through ``ClusterState.release`` (which calls no plugin),
copy the state for what-if decisions, and rebuild schedulers over a live state; counts
kept by the plugin's own reserve/unreserve would drift from the state in all three cases.
The cost is that an instance is counted only when its request names a ``service``, and
a service must keep one application (a second application for it is refused).

Without a table (``table=None``) the plugin loads the ``.npz`` named by the environment
variable ``HARMONIA_INTERFERENCE_TABLE`` on first use; if that is unset it sits out
(``SKIP``), so the ``interference`` policy is then the default policy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harmonia.model import QoSClass
from harmonia.sched.framework import MAX_NODE_SCORE, OK, SKIP, CycleState, Status, unresolvable
from harmonia.sched.state import BoolArray, ClusterState, FloatArray, IntArray

if TYPE_CHECKING:
    # NOTE: imported on first use only, so that importing the plugins (every host does)
    # does not import the interference package and what its policies need.
    from harmonia.sched.interference.table import InterferenceTable

APP_LABEL = "harmonia.io/interference-app"
TABLE_ENV = "HARMONIA_INTERFERENCE_TABLE"


class InterferenceScore:
    name = "Interference"

    def __init__(
        self,
        table: InterferenceTable | None = None,
        *,
        services: Mapping[str, str | int] | None = None,
    ) -> None:
        self._table = table
        self._loaded = table is not None
        self._pending = dict(services or {})
        #: service name → application index, learned from labelled requests.
        self.services: dict[str, int] = {}

    @property
    def table(self) -> InterferenceTable | None:
        if not self._loaded:
            self._loaded = True
            path = os.environ.get(TABLE_ENV)
            if path:
                from harmonia.sched.interference.table import InterferenceTable

                self._table = InterferenceTable.load(Path(path))
        if self._pending and self._table is not None:
            for service, app in self._pending.items():
                index = self._app_index(self._table, str(app))
                if index is None:
                    raise ValueError(f"services[{service!r}]: no profiled application {app!r}")
                self.services[service] = index
            self._pending = {}
        return self._table

    @staticmethod
    def _app_index(table: InterferenceTable, value: str) -> int | None:
        names = [name.lower() for name in table.app_names]
        key = value.strip().lower()
        if key in names:
            return names.index(key)
        if key.isdigit() and int(key) < table.apps:
            return int(key)
        return None

    def pre_filter(self, state: ClusterState, cycle: CycleState) -> Status:
        request = cycle.request
        label = request.labels.get(APP_LABEL)
        if label is None or request.qos_class is not QoSClass.LRA:
            return SKIP
        table = self.table
        if table is None:
            return SKIP
        app = self._app_index(table, label)
        if app is None:
            return unresolvable(
                f"label {APP_LABEL}={label!r} names no profiled application "
                f"(known: {', '.join(table.app_names)}, or 0..{table.apps - 1})"
            )
        if request.service:
            known = self.services.get(request.service)
            if known is not None and known != app:
                return unresolvable(
                    f"service {request.service!r} was labelled application "
                    f"{table.app_names[known]!r}, not {table.app_names[app]!r}"
                )
            self.services[request.service] = app
        cycle.data[self.name] = app
        return OK

    def pre_score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> Status:
        return OK if self.name in cycle.data else SKIP

    def counts(self, state: ClusterState) -> IntArray:
        """Containers of each profiled application on each node, shape (nodes, apps)."""
        table = self.table
        apps = table.apps if table is not None else 0
        counts = np.zeros((len(state), apps), dtype=np.int64)
        for service, app in self.services.items():
            counts[:, app] += state.counts_of(service).astype(np.int64)
        return counts

    def score(self, state: ClusterState, cycle: CycleState, feasible: BoolArray) -> FloatArray:
        table = self.table
        assert table is not None  # pre_score skips without one
        app: int = cycle.data[self.name]
        counts = self.counts(state)
        before = table.index(counts)
        counts[:, app] += 1
        after = table.index(counts)
        valid = (before >= 0) & (after >= 0)
        gain = np.where(
            valid, table.node_throughput[after] - table.node_throughput[np.maximum(before, 0)], 0
        )
        scores = np.zeros(len(state), dtype=np.float64)
        ranked = valid & feasible
        if not ranked.any():
            return scores
        low = float(gain[ranked].min())
        high = float(gain[ranked].max())
        if high - low <= 1e-12:
            scores[ranked] = MAX_NODE_SCORE
        else:
            scores[ranked] = (gain[ranked] - low) * (MAX_NODE_SCORE / (high - low))
        return scores


__all__ = ["APP_LABEL", "TABLE_ENV", "InterferenceScore"]
