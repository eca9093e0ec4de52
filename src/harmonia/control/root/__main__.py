"""``python -m harmonia.control.root --config FILE.json``: run the root as a process.

See :func:`harmonia.control.serve.run_tier` for start-up and errors.
"""

from __future__ import annotations

import sys

from harmonia.control.config import RootConfig
from harmonia.control.serve import run_tier


def main(argv: list[str] | None = None) -> int:
    def build(config: RootConfig, url: str) -> object:
        from harmonia.control.root.app import create_app  # after the config is known good

        return create_app(config)

    return run_tier(argv, "root", RootConfig, build)


if __name__ == "__main__":
    sys.exit(main())
