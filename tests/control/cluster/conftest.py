"""Fixtures of the cluster manager tests: a fake network and a running manager on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from harmonia.control.cluster import create_app

from .fakes import FakeNetwork, cluster_config, wait_for
from .harness import RunningApp

Start = Callable[..., AbstractContextManager[RunningApp]]


@pytest.fixture
def net() -> FakeNetwork:
    return FakeNetwork()


@pytest.fixture
def start(tmp_path: Path, net: FakeNetwork) -> Start:
    """``with start(**config) as tc``: a manager in ``tmp_path`` (the same directory each
    time, so a second start is a restart), registered with the fake root."""

    @contextmanager
    def started(*, registered: bool = True, **changes: object) -> Iterator[RunningApp]:
        app = create_app(
            cluster_config(tmp_path, **changes), client=net.client(), url="http://c1.test"
        )
        with RunningApp(app) as tc:
            if registered:
                wait_for(lambda: app.state.root_link.identity is not None, message="registration")
            yield tc

    return started
