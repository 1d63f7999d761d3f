"""The commands. Options given on the command line win over STREAMPORT_* and the config file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer

from streamport._version import __version__
from streamport.cli._client import AdminClient, fail
from streamport.cli._connectors import connectors_app
from streamport.cli._produce import produce_lines
from streamport.cli._webhooks import webhooks_app
from streamport.errors import StreamportError
from streamport.settings import Settings, load_settings

app = typer.Typer(
    help="streamport: a self-hosted real-time data platform with Quix-compatible APIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Create, list, describe and delete topics.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, list and revoke access tokens.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(tokens_app, name="tokens")
app.add_typer(connectors_app, name="connectors")
app.add_typer(webhooks_app, name="webhooks")

# Options shared by the commands that talk to a server. Their defaults are None so that the
# environment and the config file can supply them (see settings.py).
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="STREAMPORT_CONFIG", help="YAML or TOML settings file"),
]
UrlOpt = Annotated[
    str | None, typer.Option("--url", help="server URL [default: http://127.0.0.1:8080]")
]
TokenOpt = Annotated[str | None, typer.Option("--token", help="access token (or STREAMPORT_TOKEN)")]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(overrides, config)
    except StreamportError as exc:
        fail(str(exc))


def _client(config: Path | None, url: str | None, token: str | None) -> AdminClient:
    return AdminClient(_settings(config, url=url, token=token))


def _print_json(value: Any) -> None:
    typer.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"streamport {__version__}")


@app.command()
def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="data directory [default: .streamport]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="address to bind [default: 127.0.0.1]")] = None,
    port: Annotated[
        int | None, typer.Option(help="port, 0 for any free one [default: 8080]")
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(help="'embedded' or kafka://HOST:PORT[,HOST:PORT] [default: embedded]"),
    ] = None,
    fsync: Annotated[str | None, typer.Option(help="'never' or 'always' [default: never]")] = None,
    auth: Annotated[
        bool | None,
        typer.Option("--auth/--no-auth", help="require access tokens (off only on loopback)"),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="browser origin allowed to call the hubs (repeatable)"),
    ] = None,
    auto_create_topics: Annotated[
        bool | None,
        typer.Option(
            "--auto-create-topics/--no-auto-create-topics", help="create topics on first write"
        ),
    ] = None,
    max_record_bytes: Annotated[
        int | None, typer.Option(help="largest record [default: 1 MiB]")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="largest HTTP body [default: 10 MiB]")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Start the platform: the gateway on the embedded broker (or on Kafka with --broker)."""
    from streamport.cli._serve import serve

    settings = _settings(
        config,
        data_dir=data_dir,
        host=host,
        port=port,
        broker=broker,
        fsync=fsync,
        auth=auth,
        cors_origins=cors_origin,
        auto_create_topics=auto_create_topics,
        max_record_bytes=max_record_bytes,
        max_body_bytes=max_body_bytes,
    )
    try:
        serve(settings)
    except StreamportError as exc:
        fail(str(exc))


@topics_app.command("list")
def topics_list(url: UrlOpt = None, token: TokenOpt = None, config: ConfigOpt = None) -> None:
    """List the topics, one line each."""
    with _client(config, url, token) as client:
        for topic in client.request("GET", "/topics"):
            typer.echo(f"{topic['name']}\tpartitions={topic['partitions']}")


@topics_app.command("create")
def topics_create(
    name: str,
    partitions: Annotated[int, typer.Option(min=1)] = 1,
    retention_ms: Annotated[int, typer.Option(help="-1 for unlimited [default: 7 days]")] = 7
    * 24
    * 3600
    * 1000,
    retention_bytes: Annotated[int, typer.Option(help="-1 for unlimited")] = -1,
    url: UrlOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a topic."""
    body = {
        "name": name,
        "partitions": partitions,
        "retentionMs": retention_ms,
        "retentionBytes": retention_bytes,
    }
    with _client(config, url, token) as client:
        client.request("POST", "/topics", json=body)
    typer.echo(f"created topic {name} with {partitions} partition(s)")


@topics_app.command("describe")
def topics_describe(
    name: str, url: UrlOpt = None, token: TokenOpt = None, config: ConfigOpt = None
) -> None:
    """Show a topic's settings and offsets as JSON."""
    with _client(config, url, token) as client:
        _print_json(client.request("GET", f"/topics/{name}"))


@topics_app.command("delete")
def topics_delete(
    name: str, url: UrlOpt = None, token: TokenOpt = None, config: ConfigOpt = None
) -> None:
    """Delete a topic and its data."""
    with _client(config, url, token) as client:
        client.request("DELETE", f"/topics/{name}")
    typer.echo(f"deleted topic {name}")


@app.command()
def produce(
    topic: str,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="JSON lines file [default: stdin]")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 1000,
    url: UrlOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write JSON lines to TOPIC. A line that is an object with a "value" is a record
    ({"key", "value", "headers", "timestamp"}); any other JSON line is the value itself.
    Malformed lines are reported with their line number; the valid ones are still written."""
    with _client(config, url, token) as client:
        if file is None:
            written, bad = produce_lines(
                client, topic, sys.stdin.buffer, batch_size, total_bytes=None
            )
        else:
            if not file.is_file():
                fail(f"no such file: {file}")
            with file.open("rb") as handle:
                written, bad = produce_lines(
                    client, topic, handle, batch_size, total_bytes=file.stat().st_size
                )
    typer.echo(
        f"wrote {written} record(s) to {topic}"
        + (f"; {bad} malformed line(s) skipped" if bad else "")
    )
    if bad:
        raise typer.Exit(1)


@app.command()
def consume(
    topic: str,
    group: Annotated[str | None, typer.Option(help="consumer group (commits its progress)")] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="start at the oldest record")
    ] = False,
    count: Annotated[int | None, typer.Option(min=1, help="stop after N records")] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option(help="stop after this many seconds without records"),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print TOPIC's records, one JSON object per line: topic, partition, offset, key, timestamp, value."""
    params: dict[str, Any] = {"fromBeginning": str(from_beginning).lower()}
    if group:
        params["group"] = group
    if count is not None:
        params["count"] = count
    if idle_timeout is not None:
        params["idleTimeout"] = idle_timeout
    with _client(config, url, token) as client:
        try:
            for line in client.stream_lines(f"/topics/{topic}/records", params):
                if line:
                    typer.echo(line)
        except KeyboardInterrupt:
            pass


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="a name to list and revoke it by")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="admin, write:<topic-glob> or read:<topic-glob> (repeatable) [default: admin]",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="create it offline in this data directory instead of through a server"),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an access token; the token is printed alone on the last line."""
    scopes = scope or ["admin"]
    if data_dir is not None:
        from streamport.gateway.auth import TokenStore

        try:
            new = TokenStore(data_dir).create(name, scopes)
        except StreamportError as exc:
            fail(str(exc))
    else:
        with _client(config, url, token) as client:
            new = client.request("POST", "/tokens", json={"name": name, "scopes": scopes})["token"]
    typer.echo(f"created token {name!r} with scopes {', '.join(scopes)} (shown once):")
    typer.echo(new)


@tokens_app.command("list")
def tokens_list(url: UrlOpt = None, token: TokenOpt = None, config: ConfigOpt = None) -> None:
    """List tokens by name and scopes (never the tokens themselves)."""
    with _client(config, url, token) as client:
        for item in client.request("GET", "/tokens"):
            typer.echo(f"{item['name']}\t{' '.join(item['scopes'])}")


@tokens_app.command("revoke")
def tokens_revoke(
    name: str, url: UrlOpt = None, token: TokenOpt = None, config: ConfigOpt = None
) -> None:
    """Revoke the token called NAME."""
    with _client(config, url, token) as client:
        client.request("DELETE", f"/tokens/{name}")
    typer.echo(f"revoked token {name}")
