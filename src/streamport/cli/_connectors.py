"""``streamport connectors``: the catalogue, each connector's settings, and running one.

This is an entry point: it reads the environment (``STREAMPORT_CONNECTOR_*``, ``STREAMPORT_URL``,
``STREAMPORT_TOKEN``) and hands the library typed settings.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from prometheus_client import start_http_server

from streamport.cli._client import fail
from streamport.connectors import ConnectorMetrics, Runner, bind_config, describe_fields, registry
from streamport.errors import StreamportError
from streamport.settings import load_settings

connectors_app = typer.Typer(
    help="List, describe and run connectors (sources and destinations).", no_args_is_help=True
)


@connectors_app.command("list")
def connectors_list() -> None:
    """The catalogue: one line per connector (name, kind, what it does)."""
    for name in registry.names():
        try:
            cls = registry.load(name)
        except StreamportError as exc:
            typer.echo(f"{name:<22} {'?':<12} unavailable: {exc}")
            continue
        typer.echo(f"{name:<22} {cls.kind:<12} {cls.summary}")


@connectors_app.command("describe")
def connectors_describe(name: str) -> None:
    """The settings of connector NAME: type, default, whether required or secret."""
    try:
        cls = registry.load(name)
    except StreamportError as exc:
        fail(str(exc))
    typer.echo(f"{name} ({cls.kind}): {cls.summary}")
    typer.echo("")
    typer.echo("settings (YAML file keys; environment STREAMPORT_CONNECTOR_<NAME>):")
    for field in describe_fields(cls.config_class):
        flags = []
        if field.required:
            flags.append("required")
        else:
            flags.append(f"default: {field.default if field.default is not None else 'none'}")
        if field.secret:
            flags.append("secret")
        typer.echo(f"  {field.name}: {field.type}  [{', '.join(flags)}]")
        if field.description:
            typer.echo(f"      {field.description}")


async def _run(runner: Runner, timeout: float | None, count: int | None) -> Any:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.stop)
    try:
        return await runner.run(timeout=timeout, count=count)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@connectors_app.command("run")
def connectors_run(
    name: str,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file with the connector's settings")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="streamport server URL")] = None,
    token: Annotated[str | None, typer.Option("--token", help="access token")] = None,
    kafka: Annotated[
        str | None, typer.Option("--kafka", help="Kafka bootstrap servers: bypass the server")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="stop after this many records")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="stop after this many seconds")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="serve Prometheus metrics on 127.0.0.1:PORT"),
    ] = None,
) -> None:
    """Run connector NAME until stopped (Ctrl-C / SIGTERM), --count records or --timeout."""
    try:
        cls = registry.load(name)
        platform = load_settings()  # STREAMPORT_URL / STREAMPORT_TOKEN as defaults
        defaults = {
            "url": platform.url,
            "token": platform.token.get_secret_value() if platform.token else None,
        }
        settings = bind_config(
            cls.config_class,
            file=config,
            environ=os.environ,
            overrides={"url": url, "token": token, "kafka": kafka},
            defaults=defaults,
        )
        connector = cls(settings)
    except StreamportError as exc:
        fail(str(exc))
    metrics = ConnectorMetrics()
    server = None
    if metrics_port is not None:
        server, _thread = start_http_server(metrics_port, "127.0.0.1", metrics.registry)
        typer.echo(f"metrics on http://127.0.0.1:{server.server_port}/metrics", err=True)
    target = f"Kafka {settings.kafka}" if settings.kafka else settings.url
    typer.echo(f"running {name} against {target}", err=True)
    try:
        result = asyncio.run(_run(Runner(connector, metrics=metrics), timeout, count))
    except StreamportError as exc:
        fail(f"{name} failed: {exc}")
    finally:
        if server is not None:
            server.shutdown()
    typer.echo(
        f"{name}: {result.records_in} records in, {result.records_out} out, "
        f"{result.dead_letters} dead letters, {result.commits} checkpoints"
    )
