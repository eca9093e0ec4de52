"""Interference-aware placement of long-running containers, after Metis (Wang et al.,
"Metis: Learning to Schedule Long-Running Applications in Shared Container Clusters at
Scale", SC'20), with its Medea (ILP) and Paragon (classification) baselines.

:mod:`.table` holds the throughput of every node configuration (how many containers of
each application share a node), the form every policy and the score plugin read.
"""

from harmonia.sched.interference.data import (
    Profile,
    Rule,
    load_batches,
    load_profile,
    load_rules,
    make_profile,
    save_profile,
)
from harmonia.sched.interference.model import (
    ThroughputModel,
    cross_validate,
    fit_table,
    measured_means,
)
from harmonia.sched.interference.placement import (
    BatchProblem,
    Placement,
    make_problem,
    modelled_throughput,
    place,
    policy_names,
    rule_violations,
)
from harmonia.sched.interference.table import InterferenceTable, configurations

__all__ = [
    "BatchProblem",
    "InterferenceTable",
    "Placement",
    "Profile",
    "Rule",
    "ThroughputModel",
    "configurations",
    "cross_validate",
    "fit_table",
    "load_batches",
    "load_profile",
    "load_rules",
    "make_problem",
    "make_profile",
    "measured_means",
    "modelled_throughput",
    "place",
    "policy_names",
    "rule_violations",
    "save_profile",
]
