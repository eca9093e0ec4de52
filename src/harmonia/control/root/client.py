"""A small synchronous client of the root API, for the CLI and the embedded system.

Each method is one route; failures raise :class:`RootError` with the root's ``detail``
and the HTTP status (``None`` when the root was unreachable). An expired access token is
renewed once with the refresh token, transparently.
"""

from __future__ import annotations

from typing import Any

import httpx

from harmonia.model import HarmoniaError

TIMEOUT_S = 30.0


class RootError(HarmoniaError):
    """A call to the root failed; ``detail`` is the root's explanation."""

    def __init__(self, detail: Any, status: int | None = None) -> None:
        self.detail = detail
        self.status = status
        if isinstance(detail, list):
            text = "\n  ".join(str(item) for item in detail)
            text = f"{len(detail)} problem{'s' if len(detail) != 1 else ''}:\n  {text}"
        else:
            text = str(detail)
        super().__init__(f"{text} (HTTP {status})" if status is not None else text)


class RootClient:
    """Calls to the root at ``url``, as the user whose ``token`` (or login) it holds."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        refresh_token: str | None = None,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.refresh_token = refresh_token
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RootClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- auth ----------------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log in; the client keeps the tokens. Returns the token reply."""
        reply = self._call(
            "POST",
            "/api/auth/login",
            json={"username": username, "password": password},
            auth=False,
        )
        self._keep(reply)
        return dict(reply)

    def refresh(self) -> dict[str, Any]:
        """New tokens from the refresh token."""
        if not self.refresh_token:
            raise RootError("no refresh token: log in first")
        reply = self._call(
            "POST", "/api/auth/refresh", json={"refresh_token": self.refresh_token}, auth=False
        )
        self._keep(reply)
        return dict(reply)

    def create_user(self, username: str, password: str, roles: list[str]) -> dict[str, Any]:
        body = {"username": username, "password": password, "roles": roles}
        return dict(self._call("POST", "/api/users", json=body))

    # -- applications, services, instances -----------------------------------------------

    def deploy(self, descriptor: dict[str, Any]) -> list[dict[str, Any]]:
        """Deploy an SLA descriptor; the created application objects."""
        return list(self._call("POST", "/api/application/", json=descriptor))

    def applications(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/applications/"))

    def application(self, app_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/application/{app_id}"))

    def delete_application(self, app_id: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/api/application/{app_id}"))

    def services(self, app_id: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/services/{app_id}"))

    def service(self, service_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/service/{service_id}"))

    def scale(self, service_id: str, replicas: int) -> dict[str, Any]:
        """Make ``replicas`` instances wanted; the service object."""
        body = {"replicas": replicas}
        return dict(self._call("PUT", f"/api/service/{service_id}/scale", json=body))

    def add_instance(self, service_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/api/service/{service_id}/instance"))

    def delete_instance(self, service_id: str, number: int) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/api/service/{service_id}/instance/{number}"))

    def instances(self, application_id: str | None = None) -> list[dict[str, Any]]:
        params = {"application_id": application_id} if application_id else None
        return list(self._call("GET", "/api/instances/", params=params))

    def instance(self, instance_id: str) -> dict[str, Any]:
        """One instance with its ``transitions``."""
        return dict(self._call("GET", f"/api/instances/{instance_id}"))

    def logs(self, instance_id: str, stream: str = "stdout", tail: int = 100) -> str:
        params = {"stream": stream, "tail": tail}
        response = self._send("GET", f"/api/instances/{instance_id}/logs", params=params)
        return response.text

    # -- clusters ------------------------------------------------------------------------

    def clusters(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/clusters/"))

    def create_cluster_token(self, ttl_s: int | None = None) -> str:
        """A one-cluster join token (admin only)."""
        body = {"ttl_s": ttl_s} if ttl_s is not None else None
        reply = self._call("POST", "/api/clusters/tokens", json=body)
        return str(reply["token"])

    # -- plumbing ------------------------------------------------------------------------

    def _keep(self, reply: Any) -> None:
        self.token = str(reply["access_token"])
        self.refresh_token = str(reply["refresh_token"])

    def _call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        response = self._send(method, path, auth=auth, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise RootError(
                f"{method} {path}: the root sent no JSON", response.status_code
            ) from None

    def _send(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> httpx.Response:
        response = self._once(method, path, auth, kwargs)
        if response.status_code == 401 and auth and self.refresh_token:
            self.refresh()  # the access token expired: renew it once and retry
            response = self._once(method, path, auth, kwargs)
        if response.status_code >= 400:
            raise RootError(_detail(response), response.status_code)
        return response

    def _once(self, method: str, path: str, auth: bool, kwargs: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
        try:
            return self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise RootError(f"root at {self.url} unreachable: {exc}") from exc


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return body["detail"]
    return body


__all__ = ["RootClient", "RootError"]
