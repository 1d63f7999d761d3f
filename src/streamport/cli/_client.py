"""The CLI's HTTP client for the admin API of a running server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import httpx
import typer

from streamport.settings import Settings


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class AdminClient:
    def __init__(self, settings: Settings) -> None:
        headers = {}
        if settings.token is not None:
            headers["Authorization"] = f"Bearer {settings.token.get_secret_value()}"
        self._url = settings.url.rstrip("/")
        self._http = httpx.Client(base_url=self._url + "/api", headers=headers, timeout=60.0)

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            message = error["message"]
            if error.get("field"):
                message += f" (field: {error['field']})"
        except (ValueError, KeyError, TypeError):
            message = response.text or response.reason_phrase
        hint = " (pass --token or set STREAMPORT_TOKEN)" if response.status_code == 401 else ""
        fail(f"{response.status_code}: {message}{hint}")

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._check(self._http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            fail(f"cannot reach streamport at {self._url}: {exc} (is `streamport up` running?)")
        return response.json() if response.content else None

    def stream_lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        try:
            with self._http.stream(
                "GET", path, params=params, timeout=httpx.Timeout(10.0, read=None)
            ) as response:
                if not response.is_success:
                    response.read()
                    self._check(response)
                yield from response.iter_lines()
        except httpx.TransportError as exc:
            fail(f"cannot reach streamport at {self._url}: {exc}")
