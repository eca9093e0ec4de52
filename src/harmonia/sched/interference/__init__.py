"""Interference-aware placement of long-running containers, after Metis (Wang et al.,
"Metis: Learning to Schedule Long-Running Applications in Shared Container Clusters at
Scale", SC'20), with its Medea (ILP) and Paragon (classification) baselines.

:mod:`.table` holds the throughput of every node configuration (how many containers of
each application share a node), the form every policy and the score plugin read.
"""

from harmonia.sched.interference.table import InterferenceTable, configurations

__all__ = ["InterferenceTable", "configurations"]
