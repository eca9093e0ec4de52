"""The node engine: runs a node's instances (``process`` and ``oci`` runtimes) for its
cluster manager, reports their states and the node's usage, and keeps them running when
the cluster manager is unreachable. See :mod:`.engine` for the behaviour, :mod:`.app`
for the HTTP API.
"""
