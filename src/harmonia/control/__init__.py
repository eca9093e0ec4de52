"""Harmonia's control plane: a root, cluster managers and node engines that run services.

Three tiers, after Oakestra (Bartolomeo et al., USENIX ATC'23), each its own process:

- :mod:`harmonia.control.root`: the HTTP API users talk to (auth, applications, services,
  instances, clusters) and the root-level scheduler, which picks a cluster;
- :mod:`harmonia.control.cluster`: a cluster manager, which registers with the root, keeps
  a :class:`~harmonia.sched.ClusterState` of its nodes and places instances on them;
- :mod:`harmonia.control.node`: a node engine, which runs instances through a runtime
  (``process`` or ``oci``) and reports their states.

The tiers talk HTTP/JSON with the messages of :mod:`harmonia.control.protocol`,
authenticated by bearer secrets issued at registration. Every placement goes through the
scheduling core (:mod:`harmonia.sched`); this package holds no placement logic.
"""
