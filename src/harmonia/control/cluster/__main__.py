"""``python -m harmonia.control.cluster --config FILE.json``: run one cluster manager.

The bound URL is the address the root calls back; see
:func:`harmonia.control.serve.run_tier` for start-up and errors.
"""

from __future__ import annotations

import sys

from harmonia.control.cluster.app import create_app
from harmonia.control.config import ClusterConfig
from harmonia.control.serve import run_tier


def main(argv: list[str] | None = None) -> int:
    return run_tier(
        argv,
        "cluster",
        ClusterConfig,
        lambda config, url: create_app(config, url=url),
        lambda config: config.name,
    )


if __name__ == "__main__":
    sys.exit(main())
