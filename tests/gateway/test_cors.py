from __future__ import annotations

import pytest

from streamport.gateway.cors import is_loopback_origin, origin_policy
from streamport.settings import Settings


@pytest.mark.parametrize(
    ("origin", "loopback"),
    [
        ("http://localhost:5173", True),
        ("http://127.0.0.1", True),
        ("https://127.8.9.1:8443", True),
        ("http://[::1]:3000", True),
        ("https://example.com", False),
        ("http://localhost.example.com", False),
        ("null", False),
        ("file://", False),
    ],
)
def test_loopback_origins(origin: str, loopback: bool) -> None:
    assert is_loopback_origin(origin) is loopback


def test_with_tokens_any_origin_may_connect() -> None:
    allow = origin_policy(Settings())
    assert allow("https://dashboard.example.com")


def test_configured_origins_narrow_it() -> None:
    allow = origin_policy(Settings(cors_origins=["https://app.example.com"]))
    assert allow("https://app.example.com")
    assert not allow("https://evil.example.com")
    assert origin_policy(Settings(cors_origins=["*"]))("https://any.example")


def test_without_auth_only_loopback_pages() -> None:
    allow = origin_policy(Settings(auth=False))
    assert allow("http://localhost:8000")
    assert not allow("https://evil.example.com")
