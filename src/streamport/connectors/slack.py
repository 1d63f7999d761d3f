"""Slack notification destination: one message per record, through Slack's Web API
``chat.postMessage`` (``POST {api_url}/chat.postMessage``, ``Authorization: Bearer <bot token>``,
JSON ``{"channel", "text"}``).

``text`` is a template filled from the record's payload (flattened with ``.``), e.g.
``"{id}: {value}"``; a record without a field the template names goes to the dead-letter topic.
Slack answers 200 with ``{"ok": false, "error": ...}`` for refusals: ``ratelimited`` (and HTTP
429 with ``Retry-After``) is backpressure, ``invalid_auth``/``not_authed``/``channel_not_found``
stop the connector, the rest are dead-lettered.

Example::

    input_topic: alerts
    bot_token: xoxb-...  # secret
    channel: "#ops"
    text: "{streamId}: {id} {value}"
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field, SecretStr

from streamport.connectors.base import Destination, SinkRecord, convert
from streamport.connectors.config import DestinationConfig
from streamport.connectors.file import rows_of
from streamport.connectors.http import check_response, send_error
from streamport.errors import Backpressure, ConfigError, RecordRejected

FATAL = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "channel_not_found"}


def render(template: str | None, record: SinkRecord) -> str:
    """The text of `record`: `template` filled from its (first) flat row, or its payload."""
    if template is None:
        payload = record.payload()
        return payload if isinstance(payload, str) else str(payload)
    row = rows_of(record)[0]
    try:
        return template.format_map({k: "" if v is None else v for k, v in row.items()})
    except (KeyError, IndexError, ValueError) as exc:
        raise RecordRejected(f"text template needs {exc} which the record lacks", record) from exc


class SlackConfig(DestinationConfig):
    bot_token: SecretStr = Field(description="Slack bot token (xoxb-...)")
    channel: str = Field(description="channel id or #name")
    text: str | None = Field(
        default=None, description="message template, e.g. '{id}: {value}' [default: payload]"
    )
    api_url: str = Field(default="https://slack.com/api", description="Slack Web API base URL")


class SlackDestination(Destination[SlackConfig]):
    name = "slack-destination"
    summary = "post each record as a Slack message (chat.postMessage)"
    config_class = SlackConfig

    def __init__(self, config: SlackConfig) -> None:
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None
        # Messages already posted since the last checkpoint (see the Twilio destination).
        self._sent: set[tuple[int, int]] = set()

    async def flush(self) -> None:
        self._sent.clear()

    async def setup(self) -> None:
        self._http = httpx.AsyncClient(
            base_url=self.config.api_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {self.config.bot_token.get_secret_value()}"},
            timeout=30.0,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def write(self, batch: list[SinkRecord]) -> None:
        assert self._http is not None
        texts = convert(batch, lambda r: render(self.config.text, r))
        for record, text in zip(batch, texts, strict=True):
            if (record.partition, record.offset) in self._sent:
                continue
            body: dict[str, Any] = {"channel": self.config.channel, "text": text}
            try:
                response = await self._http.post("chat.postMessage", json=body)
            except httpx.TransportError as exc:
                raise send_error(exc) from exc
            check_response(response, record)
            answer = response.json()
            if answer.get("ok"):
                self._sent.add((record.partition, record.offset))
                continue
            error = str(answer.get("error", "unknown_error"))
            if error == "ratelimited":
                raise Backpressure(1.0, "Slack: ratelimited")
            if error in FATAL:
                raise ConfigError(f"Slack refused the request: {error} (check bot_token, channel)")
            raise RecordRejected(f"Slack refused the message: {error}", record)
