"""Per-connector Prometheus metrics.

A connector run by ``streamport connectors run`` has a registry of its own, served on
``--metrics-port`` at ``/metrics``; the gateway's webhook sources count into the gateway's
registry (its ``/metrics``). Metric names (label ``connector``):

| name | meaning |
|---|---|
| ``streamport_connector_records_in_total`` | records read (from the outside system or the input topic) |
| ``streamport_connector_records_out_total`` | records written (to the output topic or the outside system) |
| ``streamport_connector_errors_total{kind}`` | failures: ``transient``, ``permanent``, ``dead_letter`` |
| ``streamport_connector_retries_total`` | retried operations (connect, write, flush, produce) |
| ``streamport_connector_dead_letters_total`` | records sent to the dead-letter topic |
| ``streamport_connector_lag`` | records read but not yet checkpointed (destinations) |
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class ConnectorMetrics:
    """The metrics of the connectors in one registry; `bind(name)` gives one connector's view."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "streamport_connector_records_in", "Records read", ["connector"], registry=r
        )
        self.records_out = Counter(
            "streamport_connector_records_out", "Records written", ["connector"], registry=r
        )
        self.errors = Counter(
            "streamport_connector_errors", "Failures by kind", ["connector", "kind"], registry=r
        )
        self.retries = Counter(
            "streamport_connector_retries", "Retried operations", ["connector"], registry=r
        )
        self.dead_letters = Counter(
            "streamport_connector_dead_letters",
            "Records sent to the dead-letter topic",
            ["connector"],
            registry=r,
        )
        self.lag = Gauge(
            "streamport_connector_lag",
            "Records read but not yet checkpointed",
            ["connector"],
            registry=r,
        )

    def bind(self, connector: str) -> BoundMetrics:
        return BoundMetrics(self, connector)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BoundMetrics:
    """One connector's metrics (label children looked up once)."""

    def __init__(self, metrics: ConnectorMetrics, connector: str) -> None:
        self._records_in = metrics.records_in.labels(connector)
        self._records_out = metrics.records_out.labels(connector)
        self._errors = metrics.errors
        self._retries = metrics.retries.labels(connector)
        self._dead = metrics.dead_letters.labels(connector)
        self._lag = metrics.lag.labels(connector)
        self._connector = connector
        self.records_in_count = 0
        self.records_out_count = 0
        self.dead_letter_count = 0

    def read(self, n: int = 1) -> None:
        self.records_in_count += n
        self._records_in.inc(n)

    def written(self, n: int = 1) -> None:
        self.records_out_count += n
        self._records_out.inc(n)

    def error(self, kind: str) -> None:
        self._errors.labels(self._connector, kind).inc()

    def retried(self, exc: BaseException | None = None) -> None:
        self._retries.inc()
        self.error("transient")

    def dead_lettered(self, n: int = 1) -> None:
        self.dead_letter_count += n
        self._dead.inc(n)
        self.error("dead_letter")

    def set_lag(self, value: int) -> None:
        self._lag.set(value)
