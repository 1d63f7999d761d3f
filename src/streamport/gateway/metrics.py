"""Prometheus metrics of one gateway process, in a registry of its own (so several apps can live in
one process, as they do in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._topic_children: dict[str, tuple[Counter, Counter]] = {}
        self.records_in = Counter(
            "streamport_records_in",
            "Records durably written, per topic",
            ["topic"],
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "streamport_bytes_in",
            "Value bytes durably written, per topic",
            ["topic"],
            registry=self.registry,
        )
        self.records_out = Counter(
            "streamport_records_out",
            "Records delivered to consumers, per topic",
            ["topic"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "streamport_produce_latency_seconds",
            "Time from produce call to durable acknowledgement",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "streamport_consumer_lag",
            "Records not yet committed by a consumer group",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self.errors = Counter(
            "streamport_errors",
            "Requests refused or failed, by error code",
            ["code"],
            registry=self.registry,
        )

    def observe_produce(self, topic: str, records: int, value_bytes: int, seconds: float) -> None:
        # Every acknowledged write comes through here: keep the per-topic children at hand
        # rather than looking them up (a lock and a tuple key) twice per request.
        children = self._topic_children.get(topic)
        if children is None:
            children = (self.records_in.labels(topic), self.bytes_in.labels(topic))
            self._topic_children[topic] = children
        children[0].inc(records)
        children[1].inc(value_bytes)
        self.produce_latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
