"""The root of Harmonia's control plane: the HTTP API users talk to, and the root-level
scheduler that picks a cluster for every instance (after Oakestra's root orchestrator,
Bartolomeo et al., USENIX ATC'23).

:func:`~harmonia.control.root.app.create_app` builds the FastAPI app;
``python -m harmonia.control.root --config FILE.json`` runs it as a process;
:class:`~harmonia.control.root.client.RootClient` is the CLI's typed client.
"""
