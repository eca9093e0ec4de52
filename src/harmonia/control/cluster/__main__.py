"""``python -m harmonia.control.cluster --config FILE.json``: run one cluster manager.

Binds first (port 0 picks a free one), builds the app with the bound URL as the address
the root will call, writes that URL to ``<state_dir>/address`` and serves until SIGTERM.
A bad configuration prints one line to standard error and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harmonia.control.cluster.app import create_app
from harmonia.control.config import ClusterConfig, load_config
from harmonia.control.serve import bind, serve, url_of, write_address
from harmonia.model import HarmoniaError, InputError

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harmonia.control.cluster", description="Run a Harmonia cluster manager."
    )
    parser.add_argument("--config", required=True, type=Path, help="cluster configuration (JSON)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, ClusterConfig)
    except InputError as exc:
        # One line: the paths of every broken field, joined.
        problems = "; ".join(str(e) for e in exc.errors) or str(exc)
        print(f"error: {exc.source or args.config}: {problems}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=config.log_level.upper() if config.log_level.upper() in _LEVELS else "WARNING",
        format="%(asctime)s cluster " + config.name + " %(levelname)s %(message)s",
    )
    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    url = url_of(sock)
    try:
        app = create_app(config, url=url)
    except HarmoniaError as exc:
        sock.close()
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    write_address(config.state_dir, url)
    serve(app, sock, log_level=config.log_level)
    return 0


_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}

if __name__ == "__main__":
    sys.exit(main())
