"""``python -m harmonia.control.node --config FILE.json``: run a node engine.

Binds first (port 0: any free port), writes its URL to ``<state_dir>/address``, registers
with its cluster manager and serves until SIGTERM, which stops its instances too.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harmonia.control import serve
from harmonia.control.config import NodeConfig, load_config
from harmonia.control.node.app import create_app
from harmonia.model import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harmonia.control.node", description="Run a Harmonia node engine."
    )
    parser.add_argument("--config", required=True, type=Path, help="the node's JSON config")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, NodeConfig)
    except InputError as exc:
        # One line: the problems of a multi-line validation message joined by '; '.
        message = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"error: {message}", file=sys.stderr)
        return 2
    level = logging.getLevelName(config.log_level.upper())
    logging.basicConfig(
        level=level if isinstance(level, int) else logging.WARNING,
        format="%(asctime)s node " + config.node.name + " %(levelname)s %(message)s",
    )
    try:
        sock = serve.bind(config.host, config.port)
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 2
    url = serve.url_of(sock)
    app = create_app(config, url=url)
    serve.write_address(config.state_dir, url)
    serve.serve(app, sock, log_level=config.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
