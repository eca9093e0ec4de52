"""``python -m harmonia.control.node --config FILE.json``: run a node engine.

It registers with its cluster manager and serves until SIGTERM, which stops its
instances too; see :func:`harmonia.control.serve.run_tier` for start-up and errors.
"""

from __future__ import annotations

import sys

from harmonia.control.config import NodeConfig
from harmonia.control.node.app import create_app
from harmonia.control.serve import run_tier


def main(argv: list[str] | None = None) -> int:
    return run_tier(
        argv,
        "node",
        NodeConfig,
        lambda config, url: create_app(config, url=url),
        lambda config: config.node.name,
    )


if __name__ == "__main__":
    sys.exit(main())
