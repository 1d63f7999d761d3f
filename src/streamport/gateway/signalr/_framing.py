"""Message framing: the record separator of text protocols and the VarInt length prefix of binary ones.

Both readers are incremental: they are fed whatever bytes a transport delivered (a WebSocket frame, a POST
body) and return the complete messages in it. An incomplete message stays buffered until the rest arrives
(clients batch several messages into one frame, and one message may span frames). The buffer is bounded by
``max_message_size``: a message that cannot fit raises `MessageTooLarge` instead of growing memory.
"""

from __future__ import annotations

from streamport.errors import ValidationError

RECORD_SEPARATOR = 0x1E
RS = b"\x1e"
MAX_VARINT_LENGTH = 0x7FFFFFFF  # 2 GB - 1: the largest length five VarInt bytes may carry


class ProtocolError(ValidationError):
    """Bytes that break the SignalR framing or hub protocol; the connection is closed with this text."""


class MessageTooLarge(ProtocolError):
    """A message over the configured maximum size."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The maximum message size of {limit}B was exceeded. "
            "The message size can be configured in AddHubOptions."
        )
        self.limit = limit


class TextReader:
    """Splits a byte stream into records ended by RS (0x1E). The separators are not returned."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_message_size: int | None = None) -> None:
        self._buffer = bytearray()
        self._max = max_message_size

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message waiting for the rest."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if RECORD_SEPARATOR not in data:
            # still inside one message: keep appending (no re-scan, no copy of what is buffered)
            self._buffer += data
            if self._max is not None and len(self._buffer) > self._max:
                raise MessageTooLarge(self._max)
            return []
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        parts = data.split(RS)
        tail = parts.pop()  # bytes after the last separator: an incomplete message (often b"")
        limit = self._max
        if limit is not None:
            for part in parts:
                if len(part) > limit:
                    raise MessageTooLarge(limit)
            if len(tail) > limit:
                raise MessageTooLarge(limit)
        if tail:
            self._buffer += tail
        return parts


def write_varint(length: int) -> bytes:
    """The little-endian base-128 prefix of a binary message of ``length`` bytes."""
    if length < 0 or length > MAX_VARINT_LENGTH:
        raise ProtocolError("Messages bigger than 2GB are not supported.")
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame_binary(body: bytes) -> bytes:
    return write_varint(len(body)) + body


class BinaryReader:
    """Splits a byte stream into ``[VarInt length][body]`` messages and returns the bodies."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_message_size: int | None = None) -> None:
        self._buffer = bytearray()
        self._max = max_message_size

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buffer
        buf += data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while pos < end:
            length = 0
            shift = 0
            i = pos
            while True:
                if i >= end:
                    # the prefix itself is incomplete; five bytes are the most it may take
                    if i - pos >= 5:
                        raise ProtocolError("Messages over 2GB in size are not supported.")
                    del buf[:pos]
                    return out
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if i - pos >= 5:
                    raise ProtocolError("Messages over 2GB in size are not supported.")
            if length > MAX_VARINT_LENGTH:
                raise ProtocolError("Messages over 2GB in size are not supported.")
            if self._max is not None and length > self._max:
                raise MessageTooLarge(self._max)
            if i + length > end:
                del buf[:pos]
                return out
            out.append(bytes(buf[i : i + length]))
            pos = i + length
        buf.clear()
        return out
