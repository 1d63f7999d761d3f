# ruff: noqa: SIM112 (Quix deployments inject variables under their lower-case descriptor names)
"""Poll a REST API every few seconds and publish a field of each response as an event.

The classic Quix polling sample with only the import and the client constructor changed.
Settings come from the environment, as in a Quix deployment: ``output`` (topic), ``url`` (the API),
``field`` (the JSON field to publish), ``interval`` (seconds), ``max_polls`` (0 = forever).
"""

import os
import time
from datetime import datetime

import httpx

from streamport import StreamingClient

client = StreamingClient()  # STREAMPORT_URL and STREAMPORT_TOKEN
producer = client.get_topic_producer(os.environ["output"])
stream = producer.create_stream()
stream.properties.name = "REST polling"

url = os.environ["url"]
field = os.environ.get("field", "value")
interval = float(os.environ.get("interval", "5"))
max_polls = int(os.environ.get("max_polls", "0"))

polls = 0
while max_polls == 0 or polls < max_polls:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    value = response.json()[field]
    stream.events.add_timestamp(datetime.now()).add_value(field, str(value)).publish()
    print(f"published {field}={value}", flush=True)
    polls += 1
    time.sleep(interval)

stream.close()
producer.flush()
client.dispose()
