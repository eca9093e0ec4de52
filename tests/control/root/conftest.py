from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.control.root.fakes import Root, make_root, root_config


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def root(tmp_path: Path) -> AsyncIterator[Root]:
    started = make_root(root_config(tmp_path / "root"))
    try:
        yield started
    finally:
        await started.close()
