"""How a class becomes a hub method table (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamport.gateway.signalr import hub_method
from streamport.gateway.signalr._hub import HubMethods, MethodKind


class Sample:
    async def on_connected(self) -> None: ...

    async def on_disconnected(self, exc: BaseException | None) -> None: ...

    async def echo(self, value: Any) -> Any:
        return value

    @hub_method("SendParameterData")
    async def send_parameter_data(self, stream_id: str, data: dict[str, Any]) -> None: ...

    async def counter(self, n: int) -> AsyncIterator[int]:
        yield n

    async def upload(self, name: str, items: AsyncIterator[bytes]) -> int:
        return 0

    async def _private(self) -> None: ...

    def not_async(self) -> None: ...


def test_method_table() -> None:
    table = HubMethods(Sample)
    assert sorted(table.by_name) == ["counter", "echo", "sendparameterdata", "upload"]
    assert table.find("ECHO") is table.find("echo")
    send = table.find("sendParameterData")
    assert send is not None and send.attr == "send_parameter_data" and not send.returns_value
    assert send.params == [(str, False), (dict[str, Any], False)]
    counter = table.find("Counter")
    assert counter is not None and counter.kind == MethodKind.STREAM
    upload = table.find("upload")
    assert upload is not None and upload.stream_params == 1 and upload.params[1] == (bytes, True)
    assert table.find("on_connected") is None and table.find("_private") is None
    assert table.find("not_async") is None


def test_two_methods_with_one_name_are_refused() -> None:
    class Clash:
        async def echo(self) -> None: ...

        @hub_method("Echo")
        async def other(self) -> None: ...

    with pytest.raises(TypeError, match="two methods"):
        HubMethods(Clash)
