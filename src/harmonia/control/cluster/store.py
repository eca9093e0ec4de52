"""Durable state of a cluster manager: its identity at the root, its nodes, its instances.

A cluster manager must survive its own restart without stopping anything: the root's join
token is single-use, so the identity it earned is kept; node engines keep their secrets,
so they are kept too; and every instance's spec, node and state are kept so that the
restarted manager rebuilds the same reservations (see :mod:`.manager`).

SQLAlchemy 2.0 Core over SQLite (WAL, the default, in the manager's state directory) or
any URL, e.g. PostgreSQL. Writes happen on changes only (a registration, a transition),
never per heartbeat. Rows hold JSON produced by the protocol's pydantic models and are
validated again when read; nothing is pickled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Insert, Update

from harmonia.control.protocol import InstanceSpec
from harmonia.model import InstanceState, Node

metadata = MetaData()

identity_table = Table(
    "cluster_identity",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)

nodes_table = Table(
    "cluster_nodes",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("node_json", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("registered_at", Float, nullable=False),
)

instances_table = Table(
    "cluster_instances",
    metadata,
    Column("instance_id", String(255), primary_key=True),
    Column("spec_json", Text, nullable=False),
    Column("node", String(255), nullable=True),
    Column("state", String(32), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("pid", Integer, nullable=True),
    Column("restarts", Integer, nullable=False, default=0),
    Column("started_at", Float, nullable=True),
    Column("at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)


@dataclass(frozen=True)
class StoredNode:
    node: Node
    url: str
    secret: str
    registered_at: float


@dataclass(frozen=True)
class StoredInstance:
    spec: InstanceSpec
    node: str | None
    state: InstanceState
    detail: str
    pid: int | None
    restarts: int
    started_at: float | None
    at: float
    created_at: float


class ClusterStore:
    """The cluster manager's tables behind one SQLAlchemy engine."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self._sqlite_path: Path | None = None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self._sqlite_path = Path(str(parsed.database))
            self._sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        if self._sqlite_path is not None:
            # The file holds the node secrets and the cluster's own secret.
            for path in (self._sqlite_path, *_sqlite_side_files(self._sqlite_path)):
                if path.exists():
                    os.chmod(path, 0o600)

    def close(self) -> None:
        self.engine.dispose()

    # -- identity ------------------------------------------------------------------

    def load_identity(self) -> tuple[str, str] | None:
        """``(id, secret)`` issued by the root, or None before the first registration."""
        with self.engine.connect() as conn:
            rows = dict(conn.execute(select(identity_table.c.key, identity_table.c.value)).all())
        if "id" in rows and "secret" in rows:
            return str(rows["id"]), str(rows["secret"])
        return None

    def save_identity(self, cluster_id: str, secret: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(identity_table))
            conn.execute(
                identity_table.insert(),
                [{"key": "id", "value": cluster_id}, {"key": "secret", "value": secret}],
            )

    # -- nodes ---------------------------------------------------------------------

    def save_node(self, stored: StoredNode) -> None:
        values = {
            "node_json": stored.node.model_dump_json(),
            "url": stored.url,
            "secret": stored.secret,
            "registered_at": stored.registered_at,
        }
        with self.engine.begin() as conn:
            _upsert(conn, nodes_table, nodes_table.c.name, stored.node.name, values)

    def load_nodes(self) -> list[StoredNode]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(nodes_table).order_by(nodes_table.c.name)).all()
        return [
            StoredNode(
                node=Node.model_validate_json(row.node_json),
                url=row.url,
                secret=row.secret,
                registered_at=row.registered_at,
            )
            for row in rows
        ]

    # -- instances -----------------------------------------------------------------

    def save_instance(self, stored: StoredInstance) -> None:
        values = {
            "spec_json": stored.spec.model_dump_json(),
            "node": stored.node,
            "state": stored.state.value,
            "detail": stored.detail,
            "pid": stored.pid,
            "restarts": stored.restarts,
            "started_at": stored.started_at,
            "at": stored.at,
            "created_at": stored.created_at,
        }
        with self.engine.begin() as conn:
            _upsert(
                conn,
                instances_table,
                instances_table.c.instance_id,
                stored.spec.instance_id,
                values,
            )

    def delete_instance(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(instances_table).where(instances_table.c.instance_id == instance_id)
            )

    def load_instances(self) -> list[StoredInstance]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(instances_table).order_by(instances_table.c.created_at)
            ).all()
        return [
            StoredInstance(
                spec=InstanceSpec.model_validate_json(row.spec_json),
                node=row.node,
                state=InstanceState(row.state),
                detail=row.detail,
                pid=row.pid,
                restarts=row.restarts,
                started_at=row.started_at,
                at=row.at,
                created_at=row.created_at,
            )
            for row in rows
        ]


_KEY = "_row_key"
# Statements built once: building one costs more than SQLite's work for a small write.
_UPDATES: dict[str, Update] = {}
_INSERTS: dict[str, Insert] = {}


def _upsert(
    conn: Connection, table: Table, key: Column[Any], key_value: str, values: dict[str, Any]
) -> None:
    """Update the row with ``key == key_value`` or insert it; portable across dialects."""
    statement = _UPDATES.get(table.name)
    if statement is None:
        statement = _UPDATES[table.name] = update(table).where(key == bindparam(_KEY))
    result = conn.execute(statement, {_KEY: key_value, **values})
    if result.rowcount == 0:
        insert = _INSERTS.get(table.name)
        if insert is None:
            insert = _INSERTS[table.name] = table.insert()
        conn.execute(insert, {key.name: key_value, **values})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (a `harmonia status` peeking at the file) run beside the writer;
    # NORMAL sync is durable across process crashes, which is what a manager restart needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_side_files(path: Path) -> Iterator[Path]:
    yield path.with_name(path.name + "-wal")
    yield path.with_name(path.name + "-shm")


__all__ = ["ClusterStore", "StoredInstance", "StoredNode"]
