"""The Apache Kafka backend of the broker seam, on confluent-kafka (librdkafka).

broker = KafkaBroker("127.0.0.1:9092")
async with broker:
    await broker.create_topic("events", TopicConfig(partitions=3))
    await broker.produce("events", [Record(b"hello", key=b"stream-1")])
"""

from streamport.broker.kafka._broker import DEFAULT_MAX_RECORD_BYTES, KafkaBroker
from streamport.broker.kafka._consumer import KafkaConsumer

__all__ = ["DEFAULT_MAX_RECORD_BYTES", "KafkaBroker", "KafkaConsumer"]
