"""``python -m harmonia.control.root --config FILE.json``: run the root as a process.

Loads a :class:`~harmonia.control.config.RootConfig`, binds its socket, writes its URL
to ``state_dir/address`` and serves until SIGTERM or SIGINT. A bad configuration prints
one line to standard error and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harmonia.control import serve
from harmonia.control.config import RootConfig, load_config
from harmonia.model import HarmoniaError

EXIT_BAD_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harmonia.control.root", description="Run a Harmonia root."
    )
    parser.add_argument("--config", required=True, type=Path, help="RootConfig JSON file")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, RootConfig)
        logging.basicConfig(
            level=config.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        from harmonia.control.root.app import create_app  # after the config is known good

        app = create_app(config)
        sock = serve.bind(config.host, config.port)
    except (HarmoniaError, OSError, ValueError) as exc:
        message = " ".join(str(exc).split())
        print(f"harmonia root: {message}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    serve.write_address(config.state_dir, serve.url_of(sock))
    serve.serve(app, sock, log_level=config.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
