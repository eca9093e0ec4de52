"""FailoverReservation: keep failover placeholders current as the scheduler places instances.

The reserve-phase plugin of the ``latency-reliable`` policy (see
:mod:`harmonia.sched.failover` for the reservations themselves, after the
kubernetes-edge-scheduler, SIGCOMM'19 demo). Its ``reserve`` tells the policy's
:class:`~harmonia.sched.failover.FailoverPlanner` that an instance was placed, which
gives it a backup and grows the placeholders before the next decision; its ``unreserve``
(a later phase refused the placement) takes that back.

**Instance keys.** The planner knows instances by a key the host uses again on release and
in failure plans. A request is not an instance: the simulator places one request object
for many tasks. So before each decision a host may name the instance,
:func:`schedule_instance` (or :meth:`FailoverReservation.use_key` and then
``scheduler.schedule``); otherwise the plugin numbers it, ``InstanceKey(request.id,
serial)``, and :attr:`FailoverReservation.last_key` says which key the last placement got.

**Host duties** (the planner is reached with :func:`failover_planner`):

- when an instance ends: release it in the state as usual and call
  ``planner.released(key)``;
- when a node fails: call ``planner.node_failed(node)`` *before* releasing anything on it;
  it releases and moves the instances it tracks and returns the moves (``failover``: now
  on the target; ``requeue``: released, schedule it again; ``migrate``/``stranded``:
  see :class:`~harmonia.sched.failover.Move`); the host releases and requeues the
  untracked rest (instances with no service and no latency or geo bound);
- after attaching new RTTs: apply the moves ``planner.rtt_changed()`` returns.

Example::

    scheduler = Scheduler(state, "latency-reliable")
    decision = schedule_instance(scheduler, request, key="cam-0")
    planner = failover_planner(scheduler)
    planner.overhead()["reserved"]["cpu_m"]        # millicores held by placeholders
    for move in planner.node_failed("edge-3"):     # the host applies these to its records
        ...
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, NamedTuple

from harmonia.model import HarmoniaError, PlacementRequest
from harmonia.sched.failover import FailoverPlanner
from harmonia.sched.framework import OK, CycleState, Status
from harmonia.sched.plugins.latency import LatencyConfig
from harmonia.sched.state import ClusterState, StateError

if TYPE_CHECKING:  # the scheduler imports the policies, which import this module
    from harmonia.sched.decision import Decision
    from harmonia.sched.scheduler import Scheduler

NAME = "FailoverReservation"


class InstanceKey(NamedTuple):
    """The key the plugin gives an instance when the host names none."""

    request_id: str
    serial: int


class FailoverReservation:
    """Reserve: record the placed instance with the failover planner (which reserves its
    placeholder share). Unreserve: forget it again."""

    name = NAME

    def __init__(self, config: LatencyConfig | None = None) -> None:
        # ``config`` must be the policy's Latency configuration (user-bound RTTs).
        self._config = config
        self._planner: FailoverPlanner | None = None
        self._pending: Hashable | None = None
        self._named = False  # whether _pending was set by use_key (None is a valid key)
        self._serial = 0
        self.last_key: Hashable | None = None

    @property
    def planner(self) -> FailoverPlanner:
        """The planner of the state this plugin serves (after its first placement or
        :meth:`planner_for`)."""
        if self._planner is None:
            raise HarmoniaError(
                f"{NAME} has no planner yet: get it with failover_planner(scheduler)"
            )
        return self._planner

    def planner_for(self, state: ClusterState) -> FailoverPlanner:
        """The planner of ``state``, created on first use. A plugin serves one state: a
        profile is built afresh for each scheduler (``get_policy``)."""
        if self._planner is None:
            self._planner = FailoverPlanner(state, latency=self._config)
        elif self._planner.state is not state:
            raise StateError(
                f"{NAME} already serves another ClusterState; build the policy afresh for "
                "each scheduler (get_policy('latency-reliable'))"
            )
        return self._planner

    def use_key(self, key: Hashable) -> None:
        """Record the next placement under ``key`` (the host's instance id)."""
        self._pending, self._named = key, True

    def clear_key(self) -> None:
        """Forget a key given to :meth:`use_key` that no placement used."""
        self._pending, self._named = None, False

    def reserve(self, state: ClusterState, cycle: CycleState, node: int) -> Status:
        planner = self.planner_for(state)
        request = cycle.request
        if self._named:
            key = self._pending
            self.clear_key()
        elif not (request.service or request.labels or request.constraints):
            # Nothing the planner tracks (no service, no bound): skip the key and the call.
            self.last_key = None
            return OK
        else:
            self._serial += 1
            key = InstanceKey(request.id, self._serial)
        planner.placed(key, request, node)
        cycle.data[NAME] = key
        self.last_key = key
        return OK

    def unreserve(self, state: ClusterState, cycle: CycleState, node: int) -> None:
        # Idempotent, as the framework requires: only a reservation made in this cycle
        # is undone, once.
        if NAME in cycle.data and self._planner is not None:
            self._planner.released(cycle.data.pop(NAME))


def failover_plugin(scheduler: Scheduler) -> FailoverReservation:
    """The scheduler's FailoverReservation plugin; an error naming the policy if it has none."""
    for plugin in scheduler.profile.plugins:
        if isinstance(plugin, FailoverReservation):
            return plugin
    raise HarmoniaError(
        f"policy {scheduler.profile.name!r} keeps no failover reservations (use 'latency-reliable')"
    )


def failover_planner(scheduler: Scheduler) -> FailoverPlanner:
    """The failover planner of ``scheduler``'s state, for releases, failures, RTT changes
    and the overhead report."""
    return failover_plugin(scheduler).planner_for(scheduler.state)


def schedule_instance(
    scheduler: Scheduler, request: PlacementRequest, key: Hashable, *, explain: bool = False
) -> Decision:
    """``scheduler.schedule(request)`` with the placed instance recorded under ``key``."""
    plugin = failover_plugin(scheduler)
    plugin.use_key(key)
    try:
        return scheduler.schedule(request, explain=explain)
    finally:
        plugin.clear_key()


__all__ = [
    "FailoverReservation",
    "InstanceKey",
    "failover_planner",
    "failover_plugin",
    "schedule_instance",
]
