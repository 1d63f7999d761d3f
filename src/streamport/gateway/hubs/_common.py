"""What both hubs share: the caller's principal, topic names, and errors as Completion errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from streamport.broker import Broker, validate_topic_name
from streamport.errors import (
    AuthError,
    BrokerError,
    Forbidden,
    StreamportError,
    ValidationError,
)
from streamport.gateway.auth import ANONYMOUS_ADMIN, Action, Principal
from streamport.gateway.signalr import Context, HubError

log = logging.getLogger("streamport.gateway.hubs")

MAX_SUBSCRIPTIONS = 1000  # per reader connection; more is refused with an error Completion


def principal_of(ctx: Context) -> Principal:
    who = ctx.principal
    return who if isinstance(who, Principal) else ANONYMOUS_ADMIN


def require(ctx: Context, action: Action, topic: str) -> None:
    principal_of(ctx).require(action, topic)


@contextlib.contextmanager
def hub_errors(method: str) -> Iterator[None]:
    """Turn streamport errors into `HubError` texts the caller sees, naming the field.

    ``403 Forbidden: ...`` for a missing scope; ``<field>: <problem>`` for bad input; the broker's
    message (``retriable`` says "retry") for a write that could not be made durable.
    """
    try:
        yield
    except HubError:
        raise
    except ValidationError as exc:
        text = exc.message
        if exc.field and exc.field not in text:
            text = f"{exc.field}: {text}"
        raise HubError(text) from exc
    except Forbidden as exc:
        raise HubError(f"403 Forbidden: {exc}") from exc
    except AuthError as exc:
        raise HubError(f"401 Unauthorized: {exc}") from exc
    except BrokerError as exc:
        hint = " (retry later)" if exc.retriable else ""
        log.warning("%s: broker error: %s", method, exc)
        raise HubError(f"{exc}{hint}") from exc
    except StreamportError as exc:
        raise HubError(str(exc)) from exc


class TopicNames:
    """Resolves a hub's topic argument: the plain name, or Quix's ``{workspaceId}-{name}``.

    Rule: the name as given when that topic exists; else the longest suffix after a ``-`` that
    names an existing topic (``acme-prod-cars`` -> ``prod-cars`` or ``cars``); else the name as
    given (the writer then creates it when auto-creation is on). Results for existing topics are
    cached per connection.
    """

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._cache: dict[str, str] = {}

    async def resolve(self, name: object) -> str:
        if not isinstance(name, str):
            raise ValidationError("topic must be a string", field="topic")
        found = self._cache.get(name)
        if found is not None:
            return found
        validate_topic_name(name)
        existing = {t.name for t in await self._broker.list_topics()}
        if name in existing:
            resolved = name
        else:
            suffixes = (name[i + 1 :] for i, ch in enumerate(name) if ch == "-")
            resolved = next((s for s in suffixes if s in existing), name)
        if resolved in existing:
            if len(self._cache) >= MAX_SUBSCRIPTIONS:
                self._cache.clear()
            self._cache[name] = resolved
        return resolved
