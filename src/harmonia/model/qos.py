"""Quality-of-service classes of the services Harmonia runs."""

from __future__ import annotations

from enum import StrEnum


class QoSClass(StrEnum):
    """``LC`` latency-critical services, ``BE`` best-effort batch work, ``FUNCTION``
    serverless functions, ``LRA`` long-running applications."""

    LC = "LC"
    BE = "BE"
    FUNCTION = "FUNCTION"
    LRA = "LRA"
