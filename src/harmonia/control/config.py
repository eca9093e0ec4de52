"""Configuration of each tier's process, read from a JSON file given with ``--config``.

Secrets (join tokens) travel in these files, written with mode 0600 by ``harmonia up``,
never on command lines where ``ps`` would show them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harmonia.model import FieldError, InputError, Node
from harmonia.model.errors import from_pydantic


class TierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state_dir: Path = Field(description="this process's own directory: database, logs, address")
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0: any free port")
    log_level: str = "warning"


class RootConfig(TierConfig):
    database_url: str = Field("", description="SQLAlchemy URL; default SQLite in state_dir")
    admin_password_file: Path | None = Field(
        None,
        description="where the first start writes the generated admin password (mode 0600); "
        "without it the password is printed to standard output once",
    )
    access_ttl_s: int = Field(15 * 60, gt=0)
    refresh_ttl_s: int = Field(7 * 24 * 3600, gt=0)
    cluster_timeout_s: float = Field(
        10.0, gt=0, description="a cluster without a report for this long is lost"
    )
    policy: str = Field("rom", description="root scheduling policy: rom or ldp")


class ClusterConfig(TierConfig):
    name: str
    root_url: str
    root_join_token: str = Field(min_length=16)
    node_join_token: str = Field(min_length=16)
    database_url: str = Field("", description="SQLAlchemy URL; default SQLite in state_dir")
    location: tuple[float, float] | None = None
    report_interval_s: float = Field(2.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0, description="expected from nodes")
    missed_heartbeats: int = Field(3, ge=1, description="a node missing this many is dead")
    policy: str = Field("default", description="node-level scheduling policy")


class NodeConfig(TierConfig):
    node: Node
    cluster_url: str
    join_token: str = Field(min_length=16)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    max_restarts: int = Field(5, ge=0)
    use_cgroups: bool = Field(True, description="apply CPU/memory limits via cgroups if allowed")


C = TypeVar("C", bound=TierConfig)


def load_config(path: Path, kind: type[C]) -> C:
    """Read and validate ``path``; every problem reported as an :class:`InputError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError([FieldError("", "no such configuration file")], str(path)) from exc
    except json.JSONDecodeError as exc:
        raise InputError([FieldError("", f"not JSON: {exc}")], str(path)) from exc
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise from_pydantic(exc, source=str(path)) from exc


def write_config(path: Path, config: TierConfig) -> None:
    """Write ``config`` readable by its owner only (it may hold join tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(config.model_dump_json(indent=2))


def sqlite_url(state_dir: Path, name: str) -> str:
    return f"sqlite:///{(state_dir / name).resolve()}"


__all__ = [
    "ClusterConfig",
    "NodeConfig",
    "RootConfig",
    "TierConfig",
    "load_config",
    "sqlite_url",
    "write_config",
]
