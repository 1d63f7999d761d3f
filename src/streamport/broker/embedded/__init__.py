"""The embedded backend: a partitioned log in one directory, served from this process.

See ``docs/embedded-broker.md`` for the storage layout, durability and recovery.
"""

from streamport.broker.embedded._broker import BrokerState, EmbeddedBroker, FsyncPolicy
from streamport.broker.embedded._consumer import ConsumerState, EmbeddedConsumer

__all__ = ["BrokerState", "ConsumerState", "EmbeddedBroker", "EmbeddedConsumer", "FsyncPolicy"]
