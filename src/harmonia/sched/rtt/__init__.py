"""RTT knowledge for the scheduling core: one interface over matrices and coordinates.

Plugins read RTTs through :class:`RttSource` (``row``, ``rows``, ``within``,
``reorder``); :class:`MatrixRtt` stores a full matrix, :class:`CoordinateRtt` network
coordinates. :func:`load_rtt` reads the kubernetes-edge-scheduler static files.
"""

from harmonia.sched.rtt.source import CoordinateRtt, MatrixRtt, RttSource, load_rtt

__all__ = ["CoordinateRtt", "MatrixRtt", "RttSource", "load_rtt"]
