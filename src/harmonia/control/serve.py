"""Running a tier's HTTP app: bind first, then tell the world where.

A tier binds its socket before it serves (port 0 picks a free port), writes
``http://host:port`` to ``<state_dir>/address`` atomically, and serves until SIGTERM or
SIGINT. ``harmonia up`` and the tests read that file instead of guessing ports, so many
systems can run side by side on one machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn

ADDRESS_FILE = "address"


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


__all__ = ["ADDRESS_FILE", "bind", "read_address", "serve", "url_of", "write_address"]
