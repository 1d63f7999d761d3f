"""``streamport webhooks``: add, list and remove inbound webhooks on a running server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from streamport.cli._client import AdminClient, fail
from streamport.errors import StreamportError
from streamport.settings import load_settings

webhooks_app = typer.Typer(
    help="Add, list and remove inbound webhooks (POST /webhooks/NAME).", no_args_is_help=True
)

UrlOpt = Annotated[str | None, typer.Option("--url", help="server URL")]
TokenOpt = Annotated[str | None, typer.Option("--token", help="access token (or STREAMPORT_TOKEN)")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="STREAMPORT_CONFIG", help="YAML or TOML settings file"),
]


def _client(config: Path | None, url: str | None, token: str | None) -> AdminClient:
    try:
        return AdminClient(load_settings({"url": url, "token": token}, config))
    except StreamportError as exc:
        fail(str(exc))


@webhooks_app.command("add")
def webhooks_add(
    name: str,
    topic: Annotated[str, typer.Option("--topic", help="topic the events are written to")],
    verify: Annotated[
        str, typer.Option("--verify", help="segment, github, stripe, standard or hmac")
    ],
    secret: Annotated[
        str,
        typer.Option(
            "--secret",
            prompt=True,
            hide_input=True,
            envvar="STREAMPORT_WEBHOOK_SECRET",
            help="the provider's signing secret (prompted for when not given)",
        ),
    ],
    algorithm: Annotated[
        str | None, typer.Option(help="hmac: sha1, sha256 or sha512 [default: sha256]")
    ] = None,
    header: Annotated[str | None, typer.Option(help="hmac: signature header")] = None,
    encoding: Annotated[str | None, typer.Option(help="hmac: hex or base64")] = None,
    prefix: Annotated[str | None, typer.Option(help="hmac: signature prefix, e.g. sha256=")] = None,
    tolerance: Annotated[
        int | None, typer.Option(help="seconds a signed timestamp may be off [default: 300]")
    ] = None,
    event_type_field: Annotated[
        str | None, typer.Option(help="dotted path of the event type in the body")
    ] = None,
    max_body_bytes: Annotated[int | None, typer.Option(help="body size limit")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add webhook NAME: POST /webhooks/NAME, verified, written as events to --topic."""
    body: dict[str, Any] = {"name": name, "topic": topic, "verify": verify, "secret": secret}
    optional = {
        "algorithm": algorithm,
        "header": header,
        "encoding": encoding,
        "prefix": prefix,
        "tolerance": tolerance,
        "eventTypeField": event_type_field,
        "maxBodyBytes": max_body_bytes,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    with _client(config, url, token) as client:
        created = client.request("POST", "/webhooks", json=body)
    server = client_url(url, config)
    typer.echo(f"webhook {name}: POST {server}{created['path']} -> topic {topic} (verify {verify})")


def client_url(url: str | None, config: Path | None) -> str:
    return load_settings({"url": url}, config).url.rstrip("/")


@webhooks_app.command("list")
def webhooks_list(url: UrlOpt = None, token: TokenOpt = None, config: ConfigOpt = None) -> None:
    """List webhooks: name, topic, verification, path (never secrets)."""
    with _client(config, url, token) as client:
        for item in client.request("GET", "/webhooks"):
            typer.echo(f"{item['name']}\t{item['topic']}\t{item['verify']}\t{item['path']}")


@webhooks_app.command("remove")
def webhooks_remove(
    name: str, url: UrlOpt = None, token: TokenOpt = None, config: ConfigOpt = None
) -> None:
    """Remove webhook NAME (its URL answers 404 from then on)."""
    with _client(config, url, token) as client:
        client.request("DELETE", f"/webhooks/{name}")
    typer.echo(f"removed webhook {name}")
