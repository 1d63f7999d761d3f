"""Every Writer endpoint against every kind of caller."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import Gateway, GatewayFactory

pytestmark = pytest.mark.integration

S = "/writer/topics/cars/streams/s1"
ENDPOINTS = [
    ("POST", "/writer/topics/cars/streams", {}),
    ("PUT", S, {"name": "n"}),
    ("POST", S + "/parameters/data", {"timestamps": [1], "numericValues": {"v": [1]}}),
    ("POST", S + "/events/data", [{"id": "e", "timestamp": 1, "value": "x"}]),
    ("PUT", S + "/parameters", [{"id": "v"}]),
    ("PUT", S + "/events", [{"id": "e"}]),
    ("POST", S + "/close", {}),
    ("POST", "/writer/topics/cars/messages", [{"value": 1}]),
]
CALLERS = {
    "none": (None, 401),
    "bad": ("sp_not-a-token", 401),
    "read-only": ("read:*", 403),
    "other-topic": ("write:bikes*", 403),
    "topic-glob": ("write:car?", 200),
    "admin": ("admin", 200),
}


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize("caller", sorted(CALLERS))
async def test_token_matrix(
    gateway: Gateway, method: str, path: str, body: object, caller: str
) -> None:
    scope, expected = CALLERS[caller]
    if scope is None or scope.startswith("sp_"):
        token = scope
    else:
        token = gateway.tokens.create(f"t-{caller}", [scope])
    async with gateway.client(token=token) as http:
        response = await http.request(method, path, json=body)
    assert response.status_code == expected, response.text
    if expected == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthenticated"
    if expected == 403:
        assert response.json()["error"]["code"] == "forbidden"


async def test_auth_off_on_loopback_needs_no_token(gateway_factory: GatewayFactory) -> None:
    gateway = await gateway_factory(auth=False)
    async with gateway.client(token=None) as http:
        response = await http.post(S + "/events/data", json=[{"id": "e", "timestamp": 1}])
    assert response.status_code == 200
