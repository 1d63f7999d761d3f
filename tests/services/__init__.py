"""Real services for the integration tests (Kafka, PostgreSQL, ...), started on free loopback ports.

Each module starts one service in a temporary directory and stops it at the end of the session.
A service that cannot be started makes its tests fail, never skip: scripts/test provisions them.
"""
