"""Fixtures shared by the whole suite. Real services come from tests/services/."""

pytest_plugins = [
    "tests.services.kafka",
    "tests.services.postgres",
    "tests.services.mosquitto",
    "tests.services.redis",
]
