"""RTT knowledge for the scheduling core: one interface over matrices and coordinates.

Latency-aware placement (the kubernetes-edge-scheduler, SIGCOMM'19 demo; Oakestra,
USENIX ATC'23) needs the RTT between any two nodes. Plugins read it through
:class:`RttSource`, whatever its origin:

- a full matrix, :class:`MatrixRtt`: from static files in the kubernetes-edge-scheduler
  format (:func:`load_rtt`: a whitespace matrix in ms plus a JSON map node → row), from a
  :class:`~harmonia.model.topology.Topology`, or from a complete Goldpinger mesh;
- network coordinates, :class:`CoordinateRtt`: Vivaldi (Dabek et al., SIGCOMM 2004)
  fitted by :func:`fit_vivaldi` to sparse measurements, so 10,000 nodes need about 32
  measured neighbours each instead of 10,000² pings, and n·(d+1) floats instead of n²;
- Goldpinger's ``/check_all`` JSON (:func:`from_goldpinger`): a matrix when every pair
  was measured, otherwise samples for Vivaldi.

The model. Row ``i`` of a source is the RTT in ms (float32) from node ``i`` to every
node, in :attr:`RttSource.names` order; ``source.reorder(state.names)`` aligns it with a
``ClusterState``. For coordinates, RTT(i, j) = ‖x_i − x_j‖ + h_i + h_j: the distance
between the nodes' points plus both "heights", the access-link delays that no placement
in space can express. Radius queries (``within``) are one vectorized comparison of a row;
:func:`delay_clusters` groups nodes so that every pair inside a group is within a bound
(the kubernetes-edge-scheduler's delay clusters), and :class:`RadiusIndex` answers radius
queries for many nodes per cluster, with results identical to ``within``.

Worked example: a cloud node in Frankfurt and two edge nodes in Munich::

    m = MatrixRtt(["fra-1", "muc-1", "muc-2"], [[0, 45, 47], [45, 0, 8], [47, 8, 0]])
    m.within(1, 10.0)         # [False, True, True]: muc-1 and muc-2 are within 10 ms
    delay_clusters(m, 10.0)   # [0, 1, 1]: the Munich pair is one 10 ms cluster

    # the same nodes as coordinates: Frankfurt 43 ms west of Munich, heights 1 ms each
    c = CoordinateRtt(m.names, [[-43, 0], [0, 0], [0, 6]], [1, 1, 1])
    c.row(1)                  # [45, 0, 8]  (43 + 1 + 1, 0 on the diagonal, 6 + 1 + 1)
    c.rtt(0, 2)               # 45.42: sqrt(43² + 6²) + 1 + 1

Measured quality (``Topology.generate`` on ``generate_nodes(n, clusters=10, seed=1)``,
:func:`fit_vivaldi` defaults, error on 200,000 random pairs): with 8 random plus 8
same-cluster probes per node (:func:`sample_pairs` with ``groups``; ~32 measured
neighbours each), median relative error 15.3% at 1,000 nodes (p90 37%, p99 106%, fit
< 1 s) and 15.6% at 10,000 (p90 37%, p99 106%, fit 5–8 s on 2 busy cores). With 16
uniformly random probes only, 17.0% / 17.9%, and short same-site links are predicted
many times too long (p99 880%): measure some neighbours in the node's own cluster. The
generator draws each pair's base delay independently (e.g. uniformly in 20–50 ms
between edge sites), which no model of nodes can predict: even the best constant per
cluster pair, chosen knowing the truth, has a 14.5–15% median error.
"""

from harmonia.sched.rtt.clusters import RadiusIndex, cluster_diameters, delay_clusters
from harmonia.sched.rtt.goldpinger import ZERO_TIME_MS, GoldpingerImport, from_goldpinger
from harmonia.sched.rtt.source import CoordinateRtt, MatrixRtt, RttSource, load_rtt
from harmonia.sched.rtt.vivaldi import (
    EstimationError,
    RttSamples,
    estimation_error,
    fit_vivaldi,
    sample_pairs,
    samples_of,
)

__all__ = [
    "ZERO_TIME_MS",
    "CoordinateRtt",
    "EstimationError",
    "GoldpingerImport",
    "MatrixRtt",
    "RadiusIndex",
    "RttSamples",
    "RttSource",
    "cluster_diameters",
    "delay_clusters",
    "estimation_error",
    "fit_vivaldi",
    "from_goldpinger",
    "load_rtt",
    "sample_pairs",
    "samples_of",
]
