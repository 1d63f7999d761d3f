from __future__ import annotations

from pathlib import Path

import pytest

from streamport.errors import DataDirError, Forbidden, Unauthenticated, ValidationError
from streamport.gateway.auth import TokenStore, bearer_token


def test_token_round_trip_and_hash_only_on_disk(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = store.create("ci", ["write:cars-*", "read:cars-1"])
    assert token.startswith("sp_")
    assert token not in (tmp_path / "tokens.json").read_text()
    who = store.authenticate(token)
    assert who.name == "ci"
    assert who.allows("write", "cars-7")
    assert not who.allows("write", "bikes")
    assert who.allows("read", "cars-1")
    assert not who.allows("read", "cars-2")
    assert not who.allows("admin")


def test_admin_allows_everything(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    who = store.authenticate(store.create("root"))
    assert who.allows("admin") and who.allows("read", "x") and who.allows("write", "y")


def test_missing_unknown_and_revoked_tokens(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    token = store.create("a", ["read:t"])
    with pytest.raises(Unauthenticated, match="missing"):
        store.authenticate(None)
    with pytest.raises(Unauthenticated, match="unknown"):
        store.authenticate(token + "x")
    assert store.revoke("a")
    assert not store.revoke("a")
    with pytest.raises(Unauthenticated):
        store.authenticate(token)


def test_forbidden_names_the_scope(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    who = store.authenticate(store.create("reader", ["read:t"]))
    with pytest.raises(Forbidden, match="write:t"):
        who.require("write", "t")


def test_another_process_creating_a_token_is_seen(tmp_path: Path) -> None:
    server_view = TokenStore(tmp_path)
    assert server_view.is_empty()
    token = TokenStore(tmp_path).create("offline")
    assert server_view.authenticate(token).name == "offline"


@pytest.mark.parametrize("scope", ["root", "write:", "read:a b", "write:a/b"])
def test_bad_scopes_are_refused(tmp_path: Path, scope: str) -> None:
    with pytest.raises(ValidationError) as info:
        TokenStore(tmp_path).create("x", [scope])
    assert info.value.field == "scopes"


def test_duplicate_and_bad_names(tmp_path: Path) -> None:
    store = TokenStore(tmp_path)
    store.create("x")
    with pytest.raises(ValidationError, match="exists"):
        store.create("x")
    with pytest.raises(ValidationError, match="invalid token name"):
        store.create("has space")


def test_corrupt_token_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "tokens.json").write_text("not json")
    with pytest.raises(DataDirError, match="token file"):
        TokenStore(tmp_path).list()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_bearer_scheme_is_case_insensitive(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token
