"""Authenticated JSON calls from one tier to another, with bounded retries.

Every call carries ``Authorization: Bearer <secret>``. Connection failures and 5xx answers
are retried with exponential backoff (``retries`` times); 4xx answers are not retried and
raise :class:`PeerError` with the peer's message. Replies are validated into the expected
message model; nothing is unpickled.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from harmonia.model import HarmoniaError

M = TypeVar("M", bound=BaseModel)

TIMEOUT_S = 5.0


class PeerError(HarmoniaError):
    """A call to another tier failed: unreachable, refused, or an invalid reply."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def detail_of(response: httpx.Response) -> str:
    """The peer's error message: FastAPI's ``detail`` when there is one, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:500]


class Peer:
    """Calls to one peer (a root, a cluster manager or a node engine) over ``client``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str = "",
        *,
        retries: int = 2,
        backoff_s: float = 0.1,
    ) -> None:
        self.client = client
        self.url = url.rstrip("/")
        self.secret = secret
        self.retries = retries
        self.backoff_s = backoff_s

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        reply: type[M] | None = None,
        ok: tuple[int, ...] = (200, 201, 202, 204),
        params: dict[str, Any] | None = None,
    ) -> M | httpx.Response:
        """``method path`` with ``body``; the reply validated as ``reply`` (or the raw
        response when ``reply`` is None). Raises :class:`PeerError`."""
        headers = bearer(self.secret) if self.secret else {}
        content = body.model_dump_json().encode() if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        attempt = 0
        while True:
            try:
                response = await self.client.request(
                    method,
                    self.url + path,
                    content=content,
                    headers=headers,
                    params=params,
                    timeout=TIMEOUT_S,
                )
            except httpx.HTTPError as exc:
                if attempt >= self.retries:
                    raise PeerError(f"{method} {self.url}{path}: unreachable ({exc!r})") from exc
            else:
                if response.status_code < 500 or attempt >= self.retries:
                    break
            attempt += 1
            await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
        if response.status_code not in ok:
            raise PeerError(
                f"{method} {self.url}{path}: {response.status_code} {detail_of(response)}",
                response.status_code,
            )
        if reply is None:
            return response
        try:
            return reply.model_validate_json(response.content)
        except ValidationError as exc:
            raise PeerError(f"{method} {self.url}{path}: invalid reply: {exc}") from exc


__all__ = ["TIMEOUT_S", "Peer", "PeerError", "bearer", "detail_of"]
