from __future__ import annotations

from streamport.gateway.metrics import Metrics


def test_produce_metrics_render_as_prometheus_counters_and_histogram() -> None:
    metrics = Metrics()
    metrics.observe_produce("cars", 3, 100, 0.0025)  # on a bucket bound: counted in it (le)
    metrics.observe_produce("cars", 1, 10, 3.0)  # beyond the last bound: only +Inf
    metrics.observe_produce("bikes", 2, 5, 0.0001)
    text = metrics.render().decode()
    assert 'streamport_records_in_total{topic="cars"} 4.0' in text
    assert 'streamport_bytes_in_total{topic="cars"} 110.0' in text
    assert 'streamport_records_in_total{topic="bikes"} 2.0' in text
    assert 'streamport_produce_latency_seconds_bucket{le="0.0005"} 1.0' in text
    assert 'streamport_produce_latency_seconds_bucket{le="0.0025"} 2.0' in text
    assert 'streamport_produce_latency_seconds_bucket{le="2.5"} 2.0' in text
    assert 'streamport_produce_latency_seconds_bucket{le="+Inf"} 3.0' in text
    assert "streamport_produce_latency_seconds_count 3.0" in text
    assert "streamport_produce_latency_seconds_sum 3.0026" in text
