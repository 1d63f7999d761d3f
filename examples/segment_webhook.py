# ruff: noqa: SIM112 (Quix deployments inject variables under their lower-case descriptor names)
"""Receive Segment webhooks and publish each one as an event.

The classic Quix Segment sample with only the import and the client constructor changed: the
body's HMAC-SHA1 with the shared secret must match the ``x-signature`` header (else 401).
Environment: ``output`` (topic), ``shared_secret``, ``port`` (default 80).
"""

import hashlib
import hmac
import json
import os
from datetime import datetime

from flask import Flask, Response, request
from waitress import serve  # type: ignore[import-untyped]

from streamport import StreamingClient

client = StreamingClient()
producer = client.get_topic_producer(os.environ["output"])

stream = producer.create_stream()
stream.properties.name = "Segment Data"

app = Flask("Segment Webhook")


@app.route("/webhook", methods=["POST"])
def webhook() -> Response:
    digest = hmac.new(
        bytes(os.environ["shared_secret"], "utf-8"), request.get_data(), hashlib.sha1
    ).hexdigest()
    if not hmac.compare_digest(digest, request.headers.get("x-signature", "")):
        return Response("Invalid signature", status=401)

    body = request.get_json()
    stream.events.add_timestamp(datetime.now()).add_value(
        body.get("type", "webhook"), json.dumps(body)
    ).publish()
    return Response("OK", status=200)


serve(app, host="127.0.0.1", port=int(os.environ.get("port", "80")))
