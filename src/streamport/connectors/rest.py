"""REST polling source: poll a JSON API, follow its pages, write each new record once.

Every ``interval`` seconds the source requests ``request_url`` (``method``, ``headers``,
``params``, optional JSON ``body``, bearer or basic auth), takes the list at ``records_path``
(dotted, e.g. ``data.items``; empty = the whole body) and follows pagination:
``next_link`` (a URL at ``next_path``, relative ones resolved against the request), ``cursor``
(the value at ``next_path`` sent back as the query parameter ``cursor_param``) or
``link_header`` (RFC 8288 ``Link: <...>; rel="next"``), up to ``max_pages`` per poll.

Records already written are skipped: by the value at ``dedup_key``, or by a SHA-256 of the record
when no key is set (the last ``dedup_capacity`` keys are remembered, in memory: after a restart a
record still served by the API is written again, which at-least-once allows). A key is remembered
only once its record is durable.

429 and 5xx answers (and network errors) are retried with backoff; ``Retry-After`` (seconds or an
HTTP date) is honoured. Other 4xx answers stop the connector with the status and the body's
beginning.

Example config::

    output_topic: orders
    request_url: https://api.example.com/orders
    bearer_token: ...            # secret
    records_path: data
    pagination: cursor
    next_path: meta.next_cursor
    cursor_param: cursor
    dedup_key: id
    format: events
    event_id_field: status
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections import OrderedDict
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import msgspec
from pydantic import Field, SecretStr

from streamport.connectors.base import Source, SourceRecord
from streamport.connectors.config import SourceConfig
from streamport.connectors.mapping import Mapper, MappingSettings, get_path
from streamport.connectors.retry import Backoff, retry
from streamport.connectors.runtime import Output
from streamport.errors import Backpressure, ConnectorError, ValidationError


class RestConfig(SourceConfig, MappingSettings):
    request_url: str = Field(description="URL to poll")
    method: Literal["GET", "POST"] = Field(default="GET", description="GET or POST")
    headers: dict[str, str] = Field(default_factory=dict, description="request headers")
    params: dict[str, str] = Field(default_factory=dict, description="query parameters")
    body: Any = Field(default=None, description="JSON body (POST)")
    bearer_token: SecretStr | None = Field(default=None, description="Authorization: Bearer")
    basic_user: str | None = Field(default=None, description="basic auth user")
    basic_password: SecretStr | None = Field(default=None, description="basic auth password")
    interval: float = Field(default=60.0, gt=0, description="seconds between polls")
    timeout: float = Field(default=30.0, gt=0, description="request timeout, seconds")
    records_path: str = Field(default="", description="dotted path to the list of records")
    pagination: Literal["none", "next_link", "cursor", "link_header"] = Field(
        default="none", description="none, next_link, cursor or link_header"
    )
    next_path: str = Field(default="next", description="dotted path of the next link or cursor")
    cursor_param: str = Field(default="cursor", description="query parameter of the cursor")
    max_pages: int = Field(default=100, ge=1, description="pages followed per poll")
    dedup_key: str | None = Field(
        default=None, description="dotted path of a unique key [default: a hash of the record]"
    )
    dedup_capacity: int = Field(default=100_000, ge=1, description="keys remembered")


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RestSource(Source[RestConfig]):
    name = "rest-source"
    summary = "poll a REST/JSON API (pagination, de-duplication, Retry-After) into a topic"
    config_class = RestConfig

    def __init__(self, config: RestConfig) -> None:
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._mapper = Mapper(config, default_stream=f"rest-{config.output_topic}")
        self.requests = 0

    async def setup(self) -> None:
        c = self.config
        headers = dict(c.headers)
        if c.bearer_token is not None:
            headers["Authorization"] = f"Bearer {c.bearer_token.get_secret_value()}"
        auth = None
        if c.basic_user is not None:
            password = c.basic_password.get_secret_value() if c.basic_password else ""
            auth = httpx.BasicAuth(c.basic_user, password)
        self._http = httpx.AsyncClient(headers=headers, auth=auth, timeout=c.timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def _request(self, url: str, params: dict[str, str]) -> httpx.Response:
        assert self._http is not None
        self.requests += 1
        c = self.config
        try:
            response = await self._http.request(
                c.method,
                url,
                params=params or None,  # an empty mapping would drop the query of a next link
                json=c.body if c.method == "POST" else None,
            )
        except httpx.TransportError as exc:
            raise ConnectorError(f"{c.method} {url} failed: {exc}", retriable=True) from exc
        if response.status_code == 429 or response.status_code >= 500:
            wait = retry_after(response.headers.get("retry-after"))
            if wait is not None:
                raise Backpressure(min(wait, c.retry_max * 30), f"{url}: {response.status_code}")
            raise ConnectorError(f"{url} answered {response.status_code}", retriable=True)
        if response.status_code >= 400:
            raise ConnectorError(
                f"{c.method} {url} answered {response.status_code}: {response.text[:200]}"
            )
        return response

    def _key(self, item: Any) -> str:
        if self.config.dedup_key:
            value = get_path(item, self.config.dedup_key)
            if value is None or isinstance(value, dict | list):
                raise ValidationError(
                    f"record has no scalar at {self.config.dedup_key!r} to de-duplicate by",
                    field="dedup_key",
                )
            return f"k:{value}"
        return "h:" + hashlib.sha256(msgspec.json.encode(item, order="sorted")).hexdigest()

    def _remember(self, key: str) -> None:
        self._seen[key] = None
        while len(self._seen) > self.config.dedup_capacity:
            self._seen.popitem(last=False)

    async def _page(self, output: Output, items: list[Any]) -> None:
        output.metrics.read(len(items))
        records: list[SourceRecord] = []
        batch: set[str] = set()
        for item in items:
            raw = msgspec.json.encode(item)
            try:
                key = self._key(item)
                if key in self._seen or key in batch:
                    continue

                async def ack(key: str = key) -> None:
                    self._remember(key)

                records.append(self._mapper.map(item, ack))
                batch.add(key)
            except (ValidationError, ValueError, TypeError) as exc:
                await output.reject(raw, exc)
        if records:
            await output.send(self._mapper.preamble() + records)

    def _next(
        self, response: httpx.Response, body: Any, url: str, params: dict[str, str]
    ) -> tuple[str, dict[str, str]] | None:
        c = self.config
        if c.pagination == "link_header":
            link = response.links.get("next", {}).get("url")
            return (str(response.url.join(link)), {}) if link else None
        found = get_path(body, c.next_path)
        if found in (None, "") or isinstance(found, dict | list | bool):
            return None
        if c.pagination == "next_link":
            # The next link carries its own query string; the configured params were in the first.
            return str(response.url.join(str(found))), {}
        return url, {**params, c.cursor_param: str(found)}

    async def poll(self, output: Output) -> None:
        """One poll: the first page and the pages after it."""
        c = self.config
        backoff = Backoff(c.retry_initial, c.retry_max)
        page: tuple[str, dict[str, str]] | None = (c.request_url, dict(c.params))
        pages = 0
        while page is not None and pages < c.max_pages:
            url, params = page
            response = await retry(
                functools.partial(self._request, url, params),
                backoff,
                stop=output.stopping,
                on_retry=output.metrics.retried,
                what=f"poll {url}",
            )
            try:
                body = response.json()
            except ValueError as exc:
                # Not retried: the answer goes to the dead-letter topic and the next poll comes.
                await output.reject(response.content, ConnectorError(f"{url}: not JSON: {exc}"))
                return
            found = get_path(body, c.records_path)
            items = found if isinstance(found, list) else [] if found is None else [found]
            await self._page(output, items)
            pages += 1
            page = None if c.pagination == "none" else self._next(response, body, url, params)

    async def run(self, output: Output) -> None:
        while not output.stopping.is_set():
            await self.poll(output)
            await output.sleep(self.config.interval)
