"""Signed inbound webhooks, the part that knows no HTTP server: what a webhook is
(`WebhookSpec`), signature verification for Segment, GitHub, Stripe, Standard Webhooks / Svix and
generic HMAC (`verify`, constant-time comparisons, timestamp tolerance) and replay protection
(`SeenIds`).

Shared by the gateway's ``/webhooks/{name}`` endpoint (``gateway/http/webhooks.py``) and the
webhook-source connector (``connectors/webhook.py``), which may not import the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from streamport.errors import Unauthenticated

Verify = Literal["segment", "github", "stripe", "standard", "hmac"]
Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64"]
NAME = re.compile(r"[a-zA-Z0-9._-]{1,64}")
SEEN_IDS = 10_000  # delivery ids remembered per webhook
DEFAULT_MAX_BODY = 1024 * 1024


class WebhookSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    topic: str
    verify: Verify
    secret: str
    algorithm: Algorithm = "sha256"  # hmac only
    header: str = "x-signature"  # hmac only
    encoding: Encoding = "hex"  # hmac only
    prefix: str = ""  # hmac only, e.g. "sha256="
    tolerance: int = 300  # seconds; stripe and standard
    event_type_field: str = "type"  # where the event type is in the body, when no header says
    max_body_bytes: int = DEFAULT_MAX_BODY
    created: float = 0.0

    def public(self) -> dict[str, Any]:
        """The webhook without its secret, as the admin API shows it."""
        out: dict[str, Any] = {
            "name": self.name,
            "topic": self.topic,
            "verify": self.verify,
            "tolerance": self.tolerance,
            "eventTypeField": self.event_type_field,
            "maxBodyBytes": self.max_body_bytes,
            "path": f"/webhooks/{self.name}",
            "created": self.created,
        }
        if self.verify == "hmac":
            out |= {
                "algorithm": self.algorithm,
                "header": self.header,
                "encoding": self.encoding,
                "prefix": self.prefix,
            }
        return out


# --- verification ----------------------------------------------------------------------------


class Delivery(msgspec.Struct, frozen=True):
    """What a verified request carries besides its body."""

    id: str | None
    event_type: str | None


def _hmac(key: bytes, algorithm: str, message: bytes) -> bytes:
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def _same(expected: bytes, given: str, encoding: Encoding) -> bool:
    if encoding == "hex":
        return hmac.compare_digest(expected.hex().encode(), given.strip().lower().encode())
    try:
        decoded = base64.b64decode(given.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(expected, decoded)


def _bad(reason: str) -> Unauthenticated:
    return Unauthenticated(f"webhook signature rejected: {reason}")


def _check_time(raw: str | None, tolerance: int, now: float) -> None:
    try:
        stamp = int(raw or "")
    except ValueError:
        raise _bad("missing or invalid timestamp") from None
    if abs(now - stamp) > tolerance:
        raise _bad(f"timestamp is more than {tolerance} s away from the server's clock")


def verify(spec: WebhookSpec, headers: Mapping[str, str], body: bytes, now: float) -> Delivery:
    """Check the signature of one request; raise Unauthenticated (401) when it is wrong."""
    secret = spec.secret.encode()
    if spec.verify == "segment":
        given = headers.get("x-signature")
        if not given or not _same(_hmac(secret, "sha1", body), given, "hex"):
            raise _bad("x-signature does not match")
        return Delivery(None, None)
    if spec.verify == "github":
        given = headers.get("x-hub-signature-256", "")
        if not given.startswith("sha256=") or not _same(
            _hmac(secret, "sha256", body), given[len("sha256=") :], "hex"
        ):
            raise _bad("X-Hub-Signature-256 does not match")
        return Delivery(headers.get("x-github-delivery"), headers.get("x-github-event"))
    if spec.verify == "stripe":
        parts = [p.split("=", 1) for p in headers.get("stripe-signature", "").split(",")]
        fields = [(p[0].strip(), p[1].strip()) for p in parts if len(p) == 2]
        stamp = next((v for k, v in fields if k == "t"), None)
        _check_time(stamp, spec.tolerance, now)
        expected = _hmac(secret, "sha256", f"{stamp}.".encode() + body)
        if not any(k == "v1" and _same(expected, v, "hex") for k, v in fields):
            raise _bad("Stripe-Signature does not match")
        return Delivery(None, None)
    if spec.verify == "standard":
        prefix = "webhook-" if "webhook-id" in headers else "svix-"
        msg_id = headers.get(prefix + "id")
        stamp = headers.get(prefix + "timestamp")
        if not msg_id:
            raise _bad(f"missing {prefix}id")
        _check_time(stamp, spec.tolerance, now)
        try:
            key = base64.b64decode(spec.secret.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = secret
        expected = _hmac(key, "sha256", f"{msg_id}.{stamp}.".encode() + body)
        signatures = headers.get(prefix + "signature", "").split()
        if not any(
            s.startswith("v1,") and _same(expected, s[len("v1,") :], "base64") for s in signatures
        ):
            raise _bad(f"{prefix}signature does not match")
        return Delivery(msg_id, None)
    given = headers.get(spec.header.lower(), "")
    if spec.prefix:
        if not given.startswith(spec.prefix):
            raise _bad(f"{spec.header} does not start with {spec.prefix!r}")
        given = given[len(spec.prefix) :]
    if not given or not _same(_hmac(secret, spec.algorithm, body), given, spec.encoding):
        raise _bad(f"{spec.header} does not match")
    return Delivery(None, None)


def body_delivery_id(spec: WebhookSpec, body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    for field in ("messageId", "id") if spec.verify == "segment" else ("id",):
        value = body.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def event_type_of(spec: WebhookSpec, delivery: Delivery, body: Any) -> str:
    if delivery.event_type:
        return delivery.event_type
    current = body
    for part in spec.event_type_field.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    if isinstance(current, str | int) and not isinstance(current, bool) and str(current):
        return str(current).replace("/", "_").replace("\\", "_")
    return "webhook"


# --- replay protection -------------------------------------------------------------------------


class SeenIds:
    """Delivery ids of one webhook: written, or being written (a concurrent duplicate waits for
    the first and is answered as a duplicate only if that write succeeded).

    With a `path`, the ids written are also appended there (one JSON string a line) and read back
    on first use, so a replay is refused across a gateway restart too. The file is rewritten with
    the remembered ids when it grows past twice the capacity.
    """

    def __init__(self, capacity: int = SEEN_IDS, path: Path | None = None) -> None:
        self._done: OrderedDict[str, None] = OrderedDict()
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._capacity = capacity
        self._path = path
        self._loaded = path is None
        self._loading = asyncio.Lock()
        self._file_lock = threading.Lock()
        self._lines = 0

    def _remember(self, delivery_id: str) -> None:
        self._done[delivery_id] = None
        self._done.move_to_end(delivery_id)
        # Bounded: the oldest ids go first; with a timestamp scheme the tolerance refuses
        # those replays anyway.
        while len(self._done) > self._capacity:
            self._done.popitem(last=False)

    def _read(self) -> list[str]:
        assert self._path is not None
        try:
            lines = self._path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        self._lines = len(lines)
        out: list[str] = []
        for line in lines[-self._capacity :]:
            try:
                out.append(msgspec.json.decode(line, type=str))
            except msgspec.DecodeError:
                continue  # a line torn by a crash mid-append
        return out

    def _append(self, delivery_id: str, keep: list[str]) -> None:
        assert self._path is not None
        with self._file_lock:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            if self._lines + 1 > 2 * self._capacity:
                tmp = self._path.with_suffix(".tmp")
                tmp.write_bytes(b"".join(msgspec.json.encode(i) + b"\n" for i in keep))
                os.replace(tmp, self._path)
                self._lines = len(keep)
            with self._path.open("ab") as out:
                out.write(msgspec.json.encode(delivery_id) + b"\n")
            self._lines += 1

    async def claim(self, delivery_id: str) -> bool:
        """True when the caller should write this delivery (it is new)."""
        if not self._loaded:
            async with self._loading:
                if not self._loaded:
                    for seen in await asyncio.to_thread(self._read):
                        self._remember(seen)
                    self._loaded = True
        while True:
            if delivery_id in self._done:
                return False
            pending = self._pending.get(delivery_id)
            if pending is None:
                self._pending[delivery_id] = asyncio.get_running_loop().create_future()
                return True
            if await asyncio.shield(pending):
                return False

    async def finish(self, delivery_id: str, written: bool) -> None:
        """Settle a claim: `written` once the event is durable, False when the write failed."""
        try:
            if written and self._path is not None:
                await asyncio.to_thread(self._append, delivery_id, list(self._done))
        finally:
            future = self._pending.pop(delivery_id, None)
            if written:
                self._remember(delivery_id)
            if future is not None and not future.done():
                future.set_result(written)

    def forget(self) -> None:
        """Drop the file (the webhook was removed)."""
        if self._path is not None:
            with self._file_lock:
                self._path.unlink(missing_ok=True)
