"""The root's persistent state: SQLAlchemy 2.0 ORM tables and the session factory.

Everything a user or a cluster manager gave the root survives a restart: users (hashes
only), applications with the SLA JSON as given, services, instances with every state
transition and its time, clusters with their last report, and join tokens (hashes only).
SQLite in WAL mode by default (readers never wait for the single writer); any other
SQLAlchemy URL, e.g. ``postgresql+psycopg://...``, works the same.

The root runs its handlers on one event loop and keeps its sessions short, so a plain
synchronous engine is enough: SQLite serializes writers anyway, and a write of a few rows
costs well under a millisecond in WAL mode with ``synchronous=NORMAL``.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from harmonia.model import InstanceState

ID_BYTES = 8  # ids are 16 hex characters: short, URL-safe, and unguessable enough


def new_id() -> str:
    """A short random URL-safe id for an application, a service or a cluster."""
    return secrets.token_hex(ID_BYTES)


class Base(DeclarativeBase):
    pass


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class ApplicationRow(Base):
    __tablename__ = "applications"
    __table_args__ = (UniqueConstraint("owner", "name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(64), ForeignKey("users.username"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    sla: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the application's SLA as given")
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class ServiceRow(Base):
    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    application_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("applications.id"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    microservice: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the microservice as given")
    spec: Mapped[dict[str, Any]] = mapped_column(
        JSON, doc="the ServiceSpec the scheduler places and how to run it (RunSpec)"
    )
    replicas: Mapped[int] = mapped_column(Integer, doc="instances wanted")
    next_number: Mapped[int] = mapped_column(
        Integer, default=0, doc="never reused, so an instance's history stays its own"
    )
    created_at: Mapped[float] = mapped_column(Float, default=time.time)


class InstanceRow(Base):
    __tablename__ = "instances"
    __table_args__ = (Index("ix_instances_state", "state"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, doc="<service_id>.<number>")
    service_id: Mapped[str] = mapped_column(String(32), ForeignKey("services.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    cluster_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    node: Mapped[str | None] = mapped_column(String(255), default=None)
    state: Mapped[str] = mapped_column(String(32), default=InstanceState.REQUESTED.value)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[float | None] = mapped_column(Float, default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)
    placed_at: Mapped[float | None] = mapped_column(
        Float, default=None, doc="when its current cluster took it"
    )


class TransitionRow(Base):
    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No foreign key: the history outlives a deleted instance until its service goes.
    instance_id: Mapped[str] = mapped_column(String(64), index=True)
    service_id: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text, default="")


class ClusterRow(Base):
    __tablename__ = "clusters"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(1024))
    # Kept as given: the root presents it when it calls the cluster manager.
    secret: Mapped[str] = mapped_column(String(128))
    location: Mapped[list[float] | None] = mapped_column(JSON, default=None)
    registered_at: Mapped[float] = mapped_column(Float, default=time.time)
    last_report_at: Mapped[float | None] = mapped_column(Float, default=None)
    lost: Mapped[bool] = mapped_column(Boolean, default=False)
    last_report: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, default=None, doc="nodes of the last report: {'nodes': [NodeReport...]}"
    )


class JoinTokenRow(Base):
    __tablename__ = "join_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True, doc="SHA-256, hex")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    expires_at: Mapped[float] = mapped_column(Float)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    used_by: Mapped[str | None] = mapped_column(
        String(32), default=None, doc="the cluster it registered; it may re-register with it"
    )


class Store:
    """The engine and a session factory; ``with store.session() as s:`` commits on exit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _engine(url)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed when the block ends, rolled back when it raises."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    # The app's loop thread and the thread that created the app both use connections.
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    _restrict_sqlite_file(url)
    return engine


def _restrict_sqlite_file(url: str) -> None:
    """Create the database file readable by its owner only: it holds cluster secrets."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix or ":memory:" in url:
        return
    path = Path(url[len(prefix) :].split("?", 1)[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


__all__ = [
    "ApplicationRow",
    "Base",
    "ClusterRow",
    "InstanceRow",
    "JoinTokenRow",
    "ServiceRow",
    "Store",
    "TransitionRow",
    "UserRow",
    "new_id",
]
