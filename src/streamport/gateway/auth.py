"""Access tokens and scopes.

A token is 32 random bytes (``sp_`` + base64url). Only its SHA-256 is stored, in ``tokens.json`` in
the data directory (replaced atomically), so a leaked file does not leak tokens; a plain hash is
enough because tokens carry 256 bits of entropy (no password-style stretching needed). Lookups
compare the hash against every stored one with `hmac.compare_digest`, so timing reveals nothing.

Scopes: ``admin`` (everything), ``write:<topic-glob>``, ``read:<topic-glob>`` (fnmatch globs, e.g.
``write:sensors-*``). Tokens are never logged; errors name the token by its ``name`` only.

Example::

    store = TokenStore(Path(".streamport"))
    token = store.create("ci", ["write:cars"])
    principal = store.authenticate(token)
    principal.require("write", "cars")
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from streamport.errors import Forbidden, Unauthenticated, ValidationError
from streamport.gateway._jsonfile import JsonListFile

Action = Literal["read", "write", "admin"]
_SCOPE = re.compile(r"admin|(read|write):[a-zA-Z0-9._*?\[\]-]{1,249}")
_NAME = re.compile(r"[a-zA-Z0-9._-]{1,64}")
TOKENS_FILE = "tokens.json"


class TokenRecord(msgspec.Struct, frozen=True):
    name: str
    sha256: str
    scopes: list[str]
    created: float


class Principal(msgspec.Struct, frozen=True):
    """Who made a request: a token's name and scopes (or the anonymous admin when auth is off)."""

    name: str
    scopes: tuple[str, ...]

    def allows(self, action: Action, topic: str | None = None) -> bool:
        if "admin" in self.scopes:
            return True
        if action == "admin" or topic is None:
            return False
        prefix = f"{action}:"
        return any(
            fnmatch.fnmatchcase(topic, scope[len(prefix) :])
            for scope in self.scopes
            if scope.startswith(prefix)
        )

    def require(self, action: Action, topic: str | None = None) -> None:
        if not self.allows(action, topic):
            what = f"{action}:{topic}" if topic is not None else action
            raise Forbidden(f"token {self.name!r} lacks the scope {what!r}")


ANONYMOUS_ADMIN = Principal(name="anonymous", scopes=("admin",))


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    result = list(scopes)
    for scope in result:
        if not _SCOPE.fullmatch(scope):
            raise ValidationError(
                f"invalid scope {scope!r}: use admin, write:<topic-glob> or read:<topic-glob>",
                field="scopes",
            )
    return result


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The tokens of one data directory. Thread-safe; the file is re-read when it changes, so
    ``streamport tokens create --data-dir`` works while a server runs on the same directory."""

    def __init__(self, data_dir: Path) -> None:
        self._file = JsonListFile(data_dir / TOKENS_FILE, TokenRecord, "token")
        self._lock = threading.Lock()
        self._records: dict[str, TokenRecord] = {}
        self._by_digest: dict[str, tuple[TokenRecord, Principal]] = {}

    def _load(self, *, max_age: float = 0.0) -> None:
        # Requests call this with max_age=1: the file is looked at at most once a second, so a
        # token created or revoked by another process takes effect within a second.
        records = self._file.load(max_age)
        if records is not None:
            self._records = {r.name: r for r in records}
            self._index()

    def _index(self) -> None:
        self._by_digest = {
            r.sha256: (r, Principal(r.name, tuple(r.scopes))) for r in self._records.values()
        }

    def _save(self) -> None:
        self._index()
        self._file.save(list(self._records.values()))

    def create(self, name: str, scopes: Sequence[str] = ("admin",)) -> str:
        """Create a token and return it; this is the only time the token itself is seen."""
        if not _NAME.fullmatch(name):
            raise ValidationError(
                f"invalid token name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-'",
                field="name",
            )
        checked = validate_scopes(scopes) or ["admin"]
        token = "sp_" + secrets.token_urlsafe(32)
        with self._lock:
            self._load()
            if name in self._records:
                raise ValidationError(f"a token named {name!r} exists already", field="name")
            self._records[name] = TokenRecord(name, _digest(token), checked, time.time())
            self._save()
        return token

    def list(self) -> list[TokenRecord]:
        with self._lock:
            self._load()
            return sorted(self._records.values(), key=lambda r: r.created)

    def revoke(self, name: str) -> bool:
        with self._lock:
            self._load()
            if self._records.pop(name, None) is None:
                return False
            self._save()
            return True

    def is_empty(self) -> bool:
        return not self.list()

    def authenticate(self, token: str | None) -> Principal:
        """The principal of `token`; Unauthenticated if it is missing, unknown or revoked."""
        if not token:
            raise Unauthenticated("missing access token: send 'Authorization: Bearer <token>'")
        digest = _digest(token)
        # A token unknown to the cached view may have just been created by another process
        # (`streamport tokens create --data-dir`): look at the file once more before refusing.
        for max_age in (1.0, 0.0):
            with self._lock:
                self._load(max_age=max_age)
                found = self._by_digest.get(digest)
            # The lookup is keyed by the digest, never by the token, so its timing says nothing
            # about the token; the match itself is confirmed in constant time.
            if found is not None and hmac.compare_digest(found[0].sha256, digest):
                return found[1]
        raise Unauthenticated("unknown or revoked access token")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme word case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
