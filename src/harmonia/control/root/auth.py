"""Users, passwords, tokens and roles of the root API.

- Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
  recommended profile); only hashes are stored.
- Tokens are JWTs (HS256): an access token and a refresh token whose ``typ`` claims
  differ, so neither can stand in for the other. The signing key is generated once and
  kept in ``state_dir/signing.key`` (mode 0600), so a restarted root honours the tokens
  it issued before.
- There is no default password. The first start (no users yet) creates ``admin`` with a
  generated password, stored hashed, and hands the plain text out once: to
  ``admin_password_file`` (mode 0600) when configured, else to standard output.
- Roles follow Oakestra's users: ``admin`` (everything), ``app_provider`` (deploys
  applications) and ``infra_provider`` (brings clusters; reads what runs on them).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from harmonia.control.root.store import Store, UserRow

SIGNING_KEY_FILE = "signing.key"
ALGORITHM = "HS256"
ADMIN_USERNAME = "admin"
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MIN_PASSWORD_LENGTH = 8


class Role(StrEnum):
    ADMIN = "admin"
    APP_PROVIDER = "app_provider"
    INFRA_PROVIDER = "infra_provider"


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class TokenError(Exception):
    """A token is missing, malformed, expired, of the wrong type or signed by another key."""


@dataclass(frozen=True)
class Principal:
    """The user a request acts for."""

    username: str
    roles: frozenset[Role]

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    def has(self, *roles: Role) -> bool:
        return self.is_admin or any(role in self.roles for role in roles)

    def may_change(self, owner: str) -> bool:
        """Owners and admins may change (and read) an application and what it holds."""
        return self.is_admin or self.username == owner


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def load_signing_key(state_dir: Path) -> bytes:
    """The persisted signing key, created (256 random bits, mode 0600) on first use."""
    path = state_dir / SIGNING_KEY_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
        if len(key) < 32:
            raise ValueError(f"{path}: signing key shorter than 256 bits") from None
        return key
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
    return key


class Authenticator:
    """Password checks and token issue/verification for one root."""

    def __init__(
        self,
        key: bytes,
        *,
        access_ttl_s: int,
        refresh_ttl_s: int,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._key = key
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.hasher = hasher or PasswordHasher()
        # Verified against when the user does not exist, so that a wrong username costs
        # as long as a wrong password and timing tells nothing about which was wrong.
        self._decoy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # -- passwords -----------------------------------------------------------------------

    def hash_password(self, password: str) -> str:
        return self.hasher.hash(password)

    def check_password(self, password_hash: str | None, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash or self._decoy_hash, password) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    # -- tokens --------------------------------------------------------------------------

    def issue(self, username: str) -> TokenPair:
        now = int(time.time())
        access = self._encode(username, TokenType.ACCESS, now, self.access_ttl_s)
        refresh = self._encode(username, TokenType.REFRESH, now, self.refresh_ttl_s)
        return TokenPair(access, refresh, self.access_ttl_s)

    def _encode(self, username: str, typ: TokenType, now: int, ttl_s: int) -> str:
        claims: dict[str, Any] = {
            "sub": username,
            "typ": typ.value,
            "iat": now,
            "exp": now + ttl_s,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str, typ: TokenType) -> str:
        """The username a valid token of type ``typ`` was issued to; else TokenError."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidTokenError:
            raise TokenError("invalid token") from None
        if claims.get("typ") != typ.value:
            raise TokenError(
                f"not an {typ.value} token"
                if typ is TokenType.ACCESS
                else f"not a {typ.value} token"
            )
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenError("invalid token")
        return subject


def secrets_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())


def principal_of(row: UserRow) -> Principal:
    return Principal(
        row.username, frozenset(Role(r) for r in row.roles if r in Role.__members__.values())
    )


def bootstrap_admin(store: Store, auth: Authenticator, password_file: Path | None) -> str | None:
    """Create ``admin`` with a generated password when the store has no user yet.

    The plain password goes to ``password_file`` (mode 0600, JSON ``{"username",
    "password"}``) or, without one, is returned for the caller to print once. Returns
    ``None`` when users already exist (or the password went to the file).
    """
    with store.session() as session:
        if session.query(UserRow).first() is not None:
            return None
        password = secrets.token_urlsafe(18)
        session.add(
            UserRow(
                username=ADMIN_USERNAME,
                password_hash=auth.hash_password(password),
                roles=[Role.ADMIN.value],
            )
        )
        if password_file is None:
            return password
        _write_private_json(password_file, {"username": ADMIN_USERNAME, "password": password})
        return None


def _write_private_json(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out)
        out.write("\n")
    tmp.replace(path)


__all__ = [
    "ADMIN_USERNAME",
    "MIN_PASSWORD_LENGTH",
    "SIGNING_KEY_FILE",
    "USERNAME_PATTERN",
    "Authenticator",
    "Principal",
    "Role",
    "TokenError",
    "TokenPair",
    "TokenType",
    "bootstrap_admin",
    "load_signing_key",
    "principal_of",
    "secrets_equal",
]
