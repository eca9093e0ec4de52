"""Where requests can fit: the placeable nodes, a bound of the largest free amounts, and
a memo of whether a request shape fits some placeable node.

Used by :class:`harmonia.sim.simulator.Simulation` to skip scheduling decisions that
would certainly be refused (see its docstring, "Pending queue and retries"). Every
answer is exact: the memo only saves the numpy scan over all nodes, never changes a
result.

The memo relies on the simulator telling :class:`Capacity` about every change that can
make a node fit more — a release (:meth:`Capacity.grew`) or a node becoming placeable
(:meth:`Capacity.set_placeable`). Reservations, which only make nodes fit less, need no
notice: a "fits" answer is re-checked on the node that fitted (its *witness*) before it
is reused.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from harmonia.sched import ClusterState
from harmonia.sched.state import CPU, MEMORY

STORAGE = 3  # column of storage_mib in RESOURCE_NAMES order
GROWTH_LOG_LIMIT = 1 << 16  # logged growths kept before misfit answers are dropped
RECHECK_LIMIT = 32  # growths since a misfit answer re-checked one by one (a full scan costs ~50)
SHAPES_LIMIT = 1 << 16  # memoized shapes kept before the memo starts over

Shape = tuple[int, int, int]  # cpu_m, memory_mib, storage_mib (0: not checked)
BoolArray = npt.NDArray[np.bool_]


class Capacity:
    """Free capacity over the placeable nodes of ``state`` (``placeable`` is kept here:
    pass a mask of the nodes that may take new tasks; it is not copied)."""

    def __init__(self, state: ClusterState, placeable: BoolArray) -> None:
        self.state = state
        self.placeable = placeable
        # Upper bound of the largest free CPU / memory over placeable nodes (never too
        # low): raised on every release, made exact by :meth:`exact_bound`.
        self.bound = [0, 0]
        # A node that had room for the shape when last checked.
        self._witness: dict[Shape, int] = {}
        # The node with the most free CPU among those that fitted the last scanned
        # shape: most shapes seen for the first time fit it, which saves their scan.
        self._roomy = -1
        # Shapes no placeable node had room for, with the length of the growth log then.
        self._misfit: dict[Shape, int] = {}
        # Nodes that may fit more than before (released on, or made placeable), in order.
        self._grown: list[int] = []
        self.exact_bound()

    def exact_bound(self) -> None:
        free, placeable = self.state.free, self.placeable
        if placeable.any():
            self.bound = [int(free[placeable, CPU].max()), int(free[placeable, MEMORY].max())]
        else:
            self.bound = [-1, -1]

    def grew(self, node: int) -> None:
        """``node``'s free amounts grew (a release), or it became placeable."""
        grown = self._grown
        if len(grown) >= GROWTH_LOG_LIMIT:
            # Misfit answers count growths from a position in this log; dropping it
            # drops them (they are rescanned when next asked).
            grown.clear()
            self._misfit.clear()
        grown.append(node)
        if self.placeable[node]:
            free = self.state.free
            bound = self.bound
            cpu, mem = free.item(node, CPU), free.item(node, MEMORY)
            if cpu > bound[0]:
                bound[0] = cpu
            if mem > bound[1]:
                bound[1] = mem

    def set_placeable(self, node: int, placeable: bool) -> None:
        was = bool(self.placeable[node])
        self.placeable[node] = placeable
        if placeable and not was:
            self.grew(node)

    def fits_somewhere(self, cpu: int, mem: int, disk: int) -> bool:
        """Whether some placeable node has ``cpu``, ``mem`` and ``disk`` (0: any) free."""
        shape = (cpu, mem, disk)
        node = self._witness.get(shape)
        if node is not None:
            if self._fits(node, cpu, mem, disk):
                return True
            del self._witness[shape]
        else:
            seen = self._misfit.get(shape)
            if seen is not None:
                # Nothing fitted when ``seen`` growths were logged, and only a growth
                # can change that: re-check just the nodes that grew since.
                grown = self._grown
                if len(grown) - seen <= RECHECK_LIMIT:
                    for node in grown[seen:]:
                        if self._fits(node, cpu, mem, disk):
                            del self._misfit[shape]
                            self._remember(shape, node)
                            return True
                    self._misfit[shape] = len(grown)
                    return False
                del self._misfit[shape]
        roomy = self._roomy
        if roomy >= 0 and self._fits(roomy, cpu, mem, disk):
            self._remember(shape, roomy)
            return True
        return self._scan(shape)

    def _fits(self, node: int, cpu: int, mem: int, disk: int) -> bool:
        free = self.state.free
        return bool(
            self.placeable[node]
            and free.item(node, CPU) >= cpu
            and free.item(node, MEMORY) >= mem
            and (not disk or free.item(node, STORAGE) >= disk)
        )

    def _scan(self, shape: Shape) -> bool:
        cpu, mem, disk = shape
        free = self.state.free
        mask = free[:, CPU] >= cpu
        mask &= free[:, MEMORY] >= mem
        if disk:
            mask &= free[:, STORAGE] >= disk
        mask &= self.placeable
        if mask.any():
            node = int(np.where(mask, free[:, CPU], -1).argmax())
            self._roomy = node
            self._remember(shape, node)
            return True
        if len(self._misfit) >= SHAPES_LIMIT:
            self._misfit.clear()
        self._misfit[shape] = len(self._grown)
        return False

    def _remember(self, shape: Shape, node: int) -> None:
        if len(self._witness) >= SHAPES_LIMIT:
            self._witness.clear()
        self._witness[shape] = node
