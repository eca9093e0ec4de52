"""RTT knowledge for the scheduling core: one interface over matrices and coordinates.

Placeholder docstring, rewritten below.
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
