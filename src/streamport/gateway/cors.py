"""Which browser origins may call the hubs (CORS; WebSocket upgrades are checked the same way).

- ``--cors-origin`` given: exactly those origins (``*`` for any).
- Otherwise, with tokens required (the default): any origin. A page from anywhere still needs a
  token, which a cross-site attacker does not have (tokens are bearer headers, never cookies).
- Otherwise (auth off, loopback only): only pages served from a loopback origin, so a random web
  site open in the developer's browser cannot drive an open local server.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from streamport.settings import Settings, is_loopback


def is_loopback_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and parts.hostname is not None
        and is_loopback(parts.hostname)
    )


def origin_policy(settings: Settings) -> Callable[[str], bool]:
    """The allow-origin check for `settings` (see the module docstring)."""
    origins = frozenset(settings.cors_origins)
    if origins:
        return lambda origin: "*" in origins or origin in origins
    if settings.auth:
        return lambda origin: True
    return is_loopback_origin
