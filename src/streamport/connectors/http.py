"""HTTP destination: POST the records of a topic in batches, with retries.

Each ``write()`` sends the batch in requests of up to ``max_batch`` records: a JSON array of the
records' payloads (``SinkRecord.payload()``), or JSON lines with ``body_format: ndjson``. 429 and
503 with ``Retry-After`` are backpressure; other 5xx, 408, 429 and network errors are retried
with backoff; 401/403 stop the connector (``ConfigError``); other 4xx answers are permanent: the framework retries the records one by one and
sends the ones still refused to the dead-letter topic with the status and the answer.

Example::

    input_topic: alerts
    endpoint: https://hooks.example.com/ingest
    bearer_token: ...   # secret
    max_batch: 100
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
import msgspec
from pydantic import Field, SecretStr

from streamport.connectors.base import Destination, SinkRecord, convert
from streamport.connectors.config import DestinationConfig
from streamport.connectors.rest import retry_after
from streamport.errors import Backpressure, ConfigError, ConnectorError, RecordRejected


def check_response(response: httpx.Response, record: SinkRecord | None = None) -> None:
    """Raise the error that says what the framework should do with a refused request."""
    status = response.status_code
    if status < 400:
        return
    what = f"{response.request.method} {response.request.url.path} answered {status}"
    detail = response.text[:300]
    if status in (429, 503):
        wait = retry_after(response.headers.get("retry-after"))
        if wait is not None:
            raise Backpressure(wait, f"{what}: retry after {wait:g} s")
    if status >= 500 or status in (408, 429):
        raise ConnectorError(f"{what}: {detail}", retriable=True)
    if status in (401, 403):
        # Credentials are wrong for every record: stop rather than dead-letter everything.
        raise ConfigError(f"{what}: check the credentials ({detail})")
    raise RecordRejected(f"{what}: {detail}", record)


def send_error(exc: httpx.TransportError) -> ConnectorError:
    return ConnectorError(f"request failed: {exc}", retriable=True)


class HttpConfig(DestinationConfig):
    endpoint: str = Field(description="URL the batches are sent to")
    method: Literal["POST", "PUT"] = Field(default="POST", description="POST or PUT")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    bearer_token: SecretStr | None = Field(default=None, description="Authorization: Bearer")
    max_batch: int = Field(default=100, ge=1, description="records per request")
    body_format: Literal["json", "ndjson"] = Field(
        default="json", description="json (an array) or ndjson (one record a line)"
    )
    timeout: float = Field(default=30.0, gt=0, description="request timeout, seconds")


class HttpDestination(Destination[HttpConfig]):
    name = "http-destination"
    summary = "POST records to an HTTP endpoint in batches, with retries"
    config_class = HttpConfig

    def __init__(self, config: HttpConfig) -> None:
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None

    async def setup(self) -> None:
        headers = dict(self.config.headers)
        if self.config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.config.bearer_token.get_secret_value()}"
        self._http = httpx.AsyncClient(headers=headers, timeout=self.config.timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def _body(self, payloads: list[Any]) -> tuple[bytes, str]:
        if self.config.body_format == "ndjson":
            return b"".join(msgspec.json.encode(p) + b"\n" for p in payloads), (
                "application/x-ndjson"
            )
        return msgspec.json.encode(payloads), "application/json"

    async def write(self, batch: list[SinkRecord]) -> None:
        assert self._http is not None
        payloads = convert(batch, SinkRecord.payload)
        size = self.config.max_batch
        for start in range(0, len(batch), size):
            body, media = self._body(payloads[start : start + size])
            try:
                response = await self._http.request(
                    self.config.method,
                    self.config.endpoint,
                    content=body,
                    headers={"Content-Type": media},
                )
            except httpx.TransportError as exc:
                raise send_error(exc) from exc
            # A refused multi-record request names no record: the framework splits the batch.
            check_response(response, batch[start] if len(batch) == 1 else None)
