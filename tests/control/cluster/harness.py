"""A running app for synchronous tests: its lifespan and requests on a private event loop.

Like Starlette's ``TestClient`` (deprecated with plain httpx), but it also lets a test run
a function on the app's loop (:meth:`RunningApp.on_loop`), so that the test reads the
manager's model from the one thread that changes it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

T = TypeVar("T")
CALL_TIMEOUT_S = 20.0


class RunningApp:
    def __init__(self, app: FastAPI, base_url: str = "http://c1.test") -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    def __enter__(self) -> RunningApp:
        self._thread.start()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.run(self._lifespan.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._lifespan is not None:
                self.run(self._lifespan.__aexit__(None, None, None))
            self.run(self.client.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=CALL_TIMEOUT_S)
            self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(CALL_TIMEOUT_S)

    def on_loop(self, function: Callable[[], T]) -> T:
        async def call() -> T:
            return function()

        return self.run(call())

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)
