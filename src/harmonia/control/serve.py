"""Running a tier's HTTP app: bind first, then tell the world where.

A tier binds its socket before it serves (port 0 picks a free port), writes
``http://host:port`` to ``<state_dir>/address`` atomically, and serves until SIGTERM or
SIGINT. ``harmonia up`` and the tests read that file instead of guessing ports, so many
systems can run side by side on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from harmonia.control.config import TierConfig, load_config
from harmonia.model import HarmoniaError, InputError

ADDRESS_FILE = "address"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port)."""
    # NOTE: proto must say TCP: asyncio turns Nagle off only on sockets whose proto is
    # IPPROTO_TCP, and with Nagle on, a keep-alive reply whose headers and body go out
    # in two writes waits ~40 ms for the client's delayed ACK. TCP_NODELAY on the
    # listening socket is inherited by the accepted ones (Linux) either way.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def write_address(state_dir: Path, url: str) -> None:
    """Write ``url`` to ``state_dir/address`` so a reader never sees half a line."""
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{ADDRESS_FILE}.{os.getpid()}"
    tmp.write_text(url + "\n", encoding="utf-8")
    tmp.replace(state_dir / ADDRESS_FILE)


def read_address(state_dir: Path) -> str | None:
    try:
        text = (state_dir / ADDRESS_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return text or None


def serve(app: Any, sock: socket.socket, *, log_level: str = "warning") -> None:
    """Serve ``app`` (an ASGI app) on the already bound ``sock`` until a signal stops it."""
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))


C = TypeVar("C", bound=TierConfig)
EXIT_CONFIG = 2
_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}


def run_tier(
    argv: list[str] | None,
    tier: str,
    kind: type[C],
    build: Callable[[C, str], Any],
    label: Callable[[C], str] = lambda _: "",
) -> int:
    """The ``python -m harmonia.control.<tier> --config FILE`` entry point of every tier.

    Loads ``kind`` from the file, binds, builds the app with ``build(config, url)`` (the
    bound URL is where peers call back), writes the address and serves until SIGTERM.
    A bad configuration, an app that refuses it or a port that cannot be bound prints
    one line, ``harmonia <tier>: <problem>``, to standard error and returns 2.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m harmonia.control.{tier}", description=f"Run a Harmonia {tier}."
    )
    parser.add_argument("--config", required=True, type=Path, help=f"{tier} configuration (JSON)")
    args = parser.parse_args(argv)

    def refuse(problem: str) -> int:
        print(f"harmonia {tier}: {' '.join(problem.split())}", file=sys.stderr)
        return EXIT_CONFIG

    try:
        config = load_config(args.config, kind)
    except InputError as exc:
        problems = "; ".join(str(e) for e in exc.errors) or str(exc)
        return refuse(f"{exc.source or args.config}: {problems}")
    level = config.log_level.upper()
    logging.basicConfig(
        level=level if level in _LEVELS else "WARNING",
        format=f"%(asctime)s {tier} {label(config)} %(levelname)s %(name)s: %(message)s",
    )
    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        return refuse(f"cannot listen on {config.host}:{config.port}: {exc}")
    url = url_of(sock)
    try:
        app = build(config, url)
    except (HarmoniaError, ValueError) as exc:
        sock.close()
        return refuse(f"{args.config}: {exc}")
    write_address(config.state_dir, url)
    serve(app, sock, log_level=config.log_level)
    return 0


__all__ = [
    "ADDRESS_FILE",
    "EXIT_CONFIG",
    "bind",
    "read_address",
    "run_tier",
    "serve",
    "url_of",
    "write_address",
]
