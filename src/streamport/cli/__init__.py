"""The ``streamport`` command: run the platform and talk to it.

Every command but ``up`` (and ``tokens create --data-dir``) talks to a running server through its
admin HTTP API (``--url``, ``--token`` or ``STREAMPORT_URL``, ``STREAMPORT_TOKEN``), so it works the
same over the embedded broker and over Kafka. This package and settings.py are the only places that
read the environment and config files.
"""

from __future__ import annotations

from streamport.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
