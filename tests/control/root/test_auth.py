"""Users, passwords and tokens: the admin's first start, login, refresh, roles."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import jwt
import pytest
from sqlalchemy import select

from harmonia.control.root.app import create_app
from harmonia.control.root.store import UserRow
from tests.control.root.fakes import Root, make_root, root_config

pytestmark = pytest.mark.anyio


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_first_start_creates_admin_with_a_private_generated_password(tmp_path: Path) -> None:
    config = root_config(tmp_path / "root")
    app = create_app(config)  # the production hasher: argon2id with its defaults
    controller = app.state.controller
    try:
        credentials = json.loads(config.admin_password_file.read_text())  # type: ignore[union-attr]
        assert credentials["username"] == "admin"
        assert len(credentials["password"]) >= 24
        assert mode(config.admin_password_file) == 0o600  # type: ignore[arg-type]
        assert mode(tmp_path / "root" / "signing.key") == 0o600
        with controller.store.session() as session:
            admin = session.scalars(select(UserRow)).one()
            assert admin.password_hash.startswith("$argon2id$")
            assert credentials["password"] not in admin.password_hash
            assert admin.roles == ["admin"]
        database = (tmp_path / "root" / "root.db").read_bytes()
        assert credentials["password"].encode() not in database
    finally:
        await controller.client.aclose()
        await controller.close()


async def test_restart_keeps_users_and_honours_issued_tokens(tmp_path: Path) -> None:
    config = root_config(tmp_path / "root")
    first = make_root(config)
    written = config.admin_password_file.read_text()  # type: ignore[union-attr]
    admin = await first.headers()
    carol = await first.user("carol", ["app_provider"])
    await first.close()

    second = make_root(config)
    try:
        assert config.admin_password_file.read_text() == written  # type: ignore[union-attr]
        # Tokens issued before the restart still work: the signing key was kept.
        reply = await second.http.get("/api/users", headers=admin)
        assert reply.status_code == 200
        assert sorted(u["username"] for u in reply.json()) == ["admin", "carol"]
        assert (await second.http.get("/api/applications/", headers=carol)).status_code == 200
        assert await second.token("carol", "carol-password-1")
    finally:
        await second.close()


async def test_without_a_password_file_the_password_is_printed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = root_config(tmp_path / "root", admin_password_file=None)
    first = make_root(config)
    printed = capsys.readouterr().out
    assert printed.count("password") == 1
    password = printed.split()[-1]
    assert await first.token("admin", password)
    await first.close()
    second = make_root(config)
    assert "password" not in capsys.readouterr().out
    await second.close()


async def test_wrong_credentials_are_refused_without_saying_which(root: Root) -> None:
    wrong_password = await root.http.post(
        "/api/auth/login", json={"username": "admin", "password": "not-it"}
    )
    wrong_user = await root.http.post(
        "/api/auth/login", json={"username": "nobody", "password": root.admin_password}
    )
    assert wrong_password.status_code == wrong_user.status_code == 401
    assert wrong_password.json() == wrong_user.json() == {"detail": "invalid username or password"}
    missing = await root.http.post("/api/auth/login", json={"username": "admin"})
    assert missing.status_code == 422
    assert missing.json()["detail"] == ["password: is required"]


async def test_login_and_refresh_issue_tokens_that_cannot_stand_in_for_each_other(
    root: Root,
) -> None:
    reply = await root.http.post(
        "/api/auth/login", json={"username": "admin", "password": root.admin_password}
    )
    assert reply.status_code == 200
    tokens = reply.json()
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == root.config.access_ttl_s

    as_access = await root.http.get(
        "/api/users", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert as_access.status_code == 401
    assert as_access.headers["www-authenticate"] == "Bearer"
    as_refresh = await root.http.post(
        "/api/auth/refresh", json={"refresh_token": tokens["access_token"]}
    )
    assert as_refresh.status_code == 401

    renewed = await root.http.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert renewed.status_code == 200
    fresh = renewed.json()["access_token"]
    reply = await root.http.get("/api/users", headers={"Authorization": f"Bearer {fresh}"})
    assert reply.status_code == 200


async def test_expired_forged_and_missing_tokens_are_refused(root: Root) -> None:
    key = bytes.fromhex((root.config.state_dir / "signing.key").read_text().strip())
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "admin", "typ": "access", "iat": now - 100, "exp": now - 10}, key, "HS256"
    )
    forged = jwt.encode(
        {"sub": "admin", "typ": "access", "iat": now, "exp": now + 100}, b"x" * 32, "HS256"
    )
    for token, detail in ((expired, "token expired"), (forged, "invalid token")):
        reply = await root.http.get("/api/users", headers={"Authorization": f"Bearer {token}"})
        assert (reply.status_code, reply.json()["detail"]) == (401, detail)
    reply = await root.http.get("/api/users")
    assert reply.status_code == 401
    assert "missing bearer token" in reply.json()["detail"]


async def test_only_admins_manage_users_and_hashes_never_leave(root: Root) -> None:
    dave = await root.user("dave", ["app_provider", "infra_provider"])
    assert (await root.http.get("/api/users", headers=dave)).status_code == 403
    reply = await root.http.post(
        "/api/users",
        json={"username": "eve", "password": "long-enough-1", "roles": ["admin"]},
        headers=dave,
    )
    assert reply.status_code == 403

    admin = await root.headers()
    listed = (await root.http.get("/api/users", headers=admin)).json()
    assert {u["username"]: u["roles"] for u in listed} == {
        "admin": ["admin"],
        "dave": ["app_provider", "infra_provider"],
    }
    assert all(set(u) == {"username", "roles", "created_at"} for u in listed)

    again = await root.http.post(
        "/api/users",
        json={"username": "dave", "password": "long-enough-1", "roles": ["app_provider"]},
        headers=admin,
    )
    assert again.status_code == 409
    assert again.json()["detail"].startswith("username:")
    bad = await root.http.post(
        "/api/users",
        json={"username": "f g", "password": "short", "roles": ["wizard"]},
        headers=admin,
    )
    assert bad.status_code == 422
    fields = sorted(line.split(":")[0] for line in bad.json()["detail"])
    assert fields == ["password", "roles[0]", "username"]
