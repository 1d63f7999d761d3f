"""A live dashboard of a streamport topic: ``streamlit run templates/streamlit/app.py -- --topic cars``.

Options (after ``--``): ``--url`` (default ``$STREAMPORT_URL`` or http://127.0.0.1:8080),
``--topic``, ``--parameter`` (repeatable; default every parameter), ``--stream`` (default every
stream), ``--points`` (points kept), ``--refresh`` (seconds). The token comes from
``$STREAMPORT_TOKEN`` (it needs ``read:<topic>``). The data arrives through the Reader hub
(`streamport.connectors.streamlit_app.LiveTopic`); the page redraws every ``--refresh`` seconds.
Copy this file and change `render` to make it your own.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

import streamlit as st

from streamport.connectors.streamlit_app import LiveTopic, render


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamlit run templates/streamlit/app.py --")
    parser.add_argument("--url", default=os.environ.get("STREAMPORT_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--topic", default=os.environ.get("STREAMPORT_TOPIC"), required=False)
    parser.add_argument("--parameter", action="append", dest="parameters")
    parser.add_argument("--stream", default="*")
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--refresh", type=float, default=1.0)
    # Unknown arguments are left alone: Streamlit (and its test harness) may pass their own.
    return parser.parse_known_args(argv)[0]


@st.cache_resource
def live_topic(
    url: str, token: str | None, topic: str, parameters: tuple[str, ...], stream: str, points: int
) -> LiveTopic:
    """One Reader hub connection per settings, shared by every re-run and browser tab."""
    live = LiveTopic(url, token, topic, parameters=parameters, stream=stream, max_points=points)
    live.start()
    return live


def main() -> None:
    args = options(sys.argv[1:])
    if not args.topic:
        st.error("Name a topic: streamlit run app.py -- --topic NAME (or set STREAMPORT_TOPIC)")
        return
    live = live_topic(
        args.url,
        os.environ.get("STREAMPORT_TOKEN"),
        args.topic,
        tuple(args.parameters or ["*"]),
        args.stream,
        args.points,
    )
    st.session_state["live"] = live  # for extensions of the page (and its test)

    @st.fragment(run_every=timedelta(seconds=args.refresh))
    def dashboard() -> None:
        render(live)

    dashboard()


main()
