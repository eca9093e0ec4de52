"""Harmonia: orchestration and scheduling of mixed services across edge and cloud.

One scheduling core (:mod:`harmonia.sched`) over one domain model (:mod:`harmonia.model`)
serves the simulator, Harmonia's own control plane and the Kubernetes adapter.
"""

__version__ = "0.1.0"
