from __future__ import annotations

import pytest

from tests.control.node.fakes import FakeCluster


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()
