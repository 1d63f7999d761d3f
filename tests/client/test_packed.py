"""Packed timeseries records of the native protocol: the gateway writes their JSON envelope."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from streamport import model
from streamport.broker import Record
from streamport.client._encode import PACKED_HEADER, packed_record
from streamport.client._native import NativeTransport
from streamport.errors import ValidationError
from tests.client.conftest import ThreadGateway
from tests.client.test_streaming_client import topic

pytestmark = pytest.mark.integration

DATA = model.TimeseriesData(
    timestamps=[1, 2],
    numeric_values={"speed": [1.5, None], "gear": [3, 4]},
    string_values={"name": ["a", None]},
    binary_values={"blob": [b"\x00", None]},
    tag_values={"car": ["7", "7"]},
)


def test_packed_record_lands_as_the_envelope_and_bad_packing_is_refused(
    sdk_gateway: ThreadGateway,
) -> None:
    name = topic()

    async def run() -> list[bytes]:
        transport = NativeTransport(sdk_gateway.url, sdk_gateway.token)
        await transport.start()
        try:
            packed = packed_record(DATA, b"s")
            assert packed.headers[0][0] == PACKED_HEADER
            plain = Record(value=b"plain", key=b"s", headers=(("h", b"1"),))
            await transport.produce(name, [packed, plain])
            bad = Record(value=msgspec.msgpack.encode({"Timestamps": "x"}), key=b"s")
            with pytest.raises(ValidationError, match="invalid packed timeseries data"):
                await transport.produce(
                    name, [msgspec.structs.replace(bad, headers=packed.headers)]
                )
            subscription = await transport.subscribe(name, None, "earliest")
            got = await subscription.fetch(10, 5.0)
            await subscription.aclose()
            assert [r.headers for r in got] == [(), (("h", b"1"),)]
            return [r.value for r in got]
        finally:
            await transport.aclose()

    values = asyncio.run(run())
    assert values == [model.encode(DATA), b"plain"]
    assert model.decode(values[0]) == DATA
