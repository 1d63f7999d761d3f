"""The Streamlit dashboard template: its data layer receives a topic live through the Reader hub
of a live gateway, and the page renders that data (Streamlit's AppTest, no browser)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streamport.connectors.streamlit_app import LiveState, LiveTopic
from tests.gateway.conftest import Gateway

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "streamlit" / "app.py"


async def write(gateway: Gateway, topic: str, stream: str, body: dict[str, Any]) -> None:
    async with gateway.client() as http:
        response = await http.post(
            f"/writer/topics/{topic}/streams/{stream}/parameters/data", json=body
        )
        assert response.status_code == 200, response.text


async def wait_points(live: LiveTopic, count: int) -> None:
    async with asyncio.timeout(30):
        while len(live.points()) < count:
            await asyncio.sleep(0.02)


async def test_live_topic_receives_the_subscribed_parameters(gateway: Gateway) -> None:
    live = LiveTopic(gateway.url, gateway.token, "dash", parameters=["speed"])
    live.start()
    try:
        assert await asyncio.to_thread(live.wait_subscribed, 30), live.last_error
        assert live.state is LiveState.SUBSCRIBED
        await write(
            gateway,
            "dash",
            "car-1",
            {"timestamps": [1_000, 2_000], "numericValues": {"speed": [10, 20], "rpm": [1, 2]}},
        )
        await write(
            gateway, "dash", "car-2", {"timestamps": [1_500], "numericValues": {"speed": [15]}}
        )
        await wait_points(live, 3)
        await asyncio.sleep(0.2)  # nothing more arrives: rpm is not subscribed
        points = sorted((p.time_ns, p.stream, p.parameter, p.value) for p in live.points())
        assert points == [
            (1_000, "car-1", "speed", 10.0),
            (1_500, "car-2", "speed", 15.0),
            (2_000, "car-1", "speed", 20.0),
        ]
        frame = live.frame()
        assert list(frame.columns) == ["time", "stream", "parameter", "value"]
        assert list(frame["value"]) == [10.0, 15.0, 20.0]
    finally:
        await asyncio.to_thread(live.close)
    assert live.state.value == "closed"


async def test_live_topic_reports_a_refused_token(gateway: Gateway) -> None:
    live = LiveTopic(gateway.url, "sp_not-a-token", "dash", retry_max=0.2)
    live.start()
    try:
        async with asyncio.timeout(30):
            while live.last_error is None:
                await asyncio.sleep(0.02)
        assert "refused the token (401)" in live.last_error
        assert not live.wait_subscribed(0)
    finally:
        await asyncio.to_thread(live.close)


async def test_template_page_draws_the_live_data(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STREAMPORT_URL", gateway.url)
    monkeypatch.setenv("STREAMPORT_TOKEN", gateway.token)
    monkeypatch.setenv("STREAMPORT_TOPIC", "page")
    app = AppTest.from_file(str(TEMPLATE), default_timeout=30)
    await asyncio.to_thread(app.run)
    assert not app.exception, app.exception
    assert app.title[0].value == "Live: page"
    assert "Waiting for data" in app.info[0].value
    # The page's LiveTopic (cached across re-runs) is subscribed: write, then re-run the page.
    live = app.session_state["live"]
    assert isinstance(live, LiveTopic)
    assert await asyncio.to_thread(live.wait_subscribed, 30), live.last_error
    await write(gateway, "page", "s1", {"timestamps": [1, 2], "numericValues": {"speed": [3, 4]}})
    await wait_points(live, 2)
    await asyncio.to_thread(app.run)
    assert not app.exception, app.exception
    assert not app.info
    assert [m.label for m in app.metric] == ["s1 / speed"]
    assert app.metric[0].value == "4"
    assert app.get("vega_lite_chart"), "no line chart on the page"
    await asyncio.to_thread(live.close)
