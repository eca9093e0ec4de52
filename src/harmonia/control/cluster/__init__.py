"""The cluster manager: the middle tier of Harmonia's control plane.

It registers with the root (a single-use join token, then a stored identity), accepts
node engines (the cluster's node join token), keeps a
:class:`~harmonia.sched.ClusterState` of its nodes with its own reservations, places the
root's instances on nodes through the scheduling core, moves the instances of nodes that
stop sending heartbeats, and reports nodes and instances to the root. After Oakestra's
cluster orchestrator (Bartolomeo et al., USENIX ATC'23).

Modules: :mod:`.manager` (the in-memory model, no I/O but its store), :mod:`.dispatch`
(calls to node engines, retries), :mod:`.root_link` (registration, reports),
:mod:`.store` (SQLAlchemy persistence), :mod:`.app` (the HTTP API, :func:`create_app`).
Run one with ``python -m harmonia.control.cluster --config cluster.json``.
"""

from harmonia.control.cluster.app import create_app

__all__ = ["create_app"]
