"""Twilio SMS notification destination: one SMS per record (and recipient), through Twilio's
Messages API (``POST {api_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, HTTP basic
auth with the account SID and auth token, form fields ``To``, ``From``, ``Body``).

Recipients are ``to`` (fixed numbers) and/or the value at ``to_field`` in the record. The body is
a template filled from the record (see the Slack destination). Twilio's 400 answers (an invalid
number, code 21211, …) dead-letter the record; 429 is backpressure; 401 stops the connector.

Example::

    input_topic: alerts
    account_sid: AC...
    auth_token: ...        # secret
    from_number: "+15005550006"
    to: ["+15551230000"]
    body: "Alert {id}: {value}"
"""

from __future__ import annotations

import httpx
from pydantic import Field, SecretStr

from streamport.connectors.base import Destination, SinkRecord, convert
from streamport.connectors.config import DestinationConfig
from streamport.connectors.file import rows_of
from streamport.connectors.http import check_response, send_error
from streamport.connectors.slack import render
from streamport.errors import ConfigError, RecordRejected


class TwilioConfig(DestinationConfig):
    account_sid: str = Field(description="Twilio account SID (AC...)")
    auth_token: SecretStr = Field(description="Twilio auth token")
    from_number: str = Field(description="sender number (E.164) or messaging service")
    to: list[str] = Field(default_factory=list, description="recipient numbers (E.164)")
    to_field: str | None = Field(default=None, description="record field with the recipient")
    body: str | None = Field(default=None, description="SMS template [default: payload]")
    api_url: str = Field(default="https://api.twilio.com", description="Twilio API base URL")


class TwilioDestination(Destination[TwilioConfig]):
    name = "twilio-destination"
    summary = "send each record as an SMS through Twilio"
    config_class = TwilioConfig

    def __init__(self, config: TwilioConfig) -> None:
        super().__init__(config)
        self._http: httpx.AsyncClient | None = None
        # SMS already sent since the last checkpoint: a batch handed again after a rejected
        # record (or a retry) does not text anyone twice.
        self._sent: set[tuple[int, int, str]] = set()

    async def flush(self) -> None:
        self._sent.clear()

    async def setup(self) -> None:
        c = self.config
        if not c.to and not c.to_field:
            raise ConfigError("to: give recipient numbers in 'to' or a record field in 'to_field'")
        self._http = httpx.AsyncClient(
            base_url=c.api_url.rstrip("/"),
            auth=httpx.BasicAuth(c.account_sid, c.auth_token.get_secret_value()),
            timeout=30.0,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def _message(self, record: SinkRecord) -> tuple[list[str], str]:
        recipients = list(self.config.to)
        if self.config.to_field:
            found = rows_of(record)[0].get(self.config.to_field)
            if not found:
                raise RecordRejected(f"record has no {self.config.to_field!r} recipient", record)
            recipients.append(str(found))
        return recipients, render(self.config.body, record)

    async def write(self, batch: list[SinkRecord]) -> None:
        assert self._http is not None
        messages = convert(batch, self._message)
        path = f"/2010-04-01/Accounts/{self.config.account_sid}/Messages.json"
        for record, (recipients, text) in zip(batch, messages, strict=True):
            for number in recipients:
                done = (record.partition, record.offset, number)
                if done in self._sent:
                    continue
                form = {"To": number, "From": self.config.from_number, "Body": text}
                try:
                    response = await self._http.post(path, data=form)
                except httpx.TransportError as exc:
                    raise send_error(exc) from exc
                check_response(response, record)
                self._sent.add(done)
