"""The hub side: how a plain class becomes a table of hub methods, and the errors a method may raise.

A hub is any object; its public ``async def`` methods are hub methods, matched case-insensitively by name
(or by the name given with `hub_method`). ``async def`` generators are server-to-client streams.
Parameters annotated ``AsyncIterator[T]`` receive client-to-server streams. Other parameters are decoded
from the wire straight into their annotated type (anything msgspec supports: str, int, float, bool,
list, dict, msgspec.Struct, dataclasses, datetime, bytes, ``Any``...).
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from streamport.errors import StreamportError

F = TypeVar("F", bound=Callable[..., Any])

_RESERVED = frozenset({"on_connected", "on_disconnected"})
_NAME_ATTR = "__signalr_name__"


class HubError(StreamportError):
    """Raise from a hub method to send ``message`` to the caller (ASP.NET's ``HubException``).

    The client sees ``An unexpected error occurred invoking 'X' on the server. HubException: <message>``;
    any other exception gives the caller only the generic text.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def hub_method(name: str) -> Callable[[F], F]:
    """Give a hub method its wire name, e.g. ``@hub_method("SendParameterData")`` on ``send_parameter_data``."""

    def mark(func: F) -> F:
        setattr(func, _NAME_ATTR, name)
        return func

    return mark


class MethodKind:
    PLAIN = 0
    STREAM = 1  # async generator: server-to-client stream


class HubMethod:
    """One bound-able hub method: its parameters' types, stream parameters and whether it returns a value."""

    __slots__ = ("attr", "kind", "name", "optional", "params", "returns_value", "stream_params")

    def __init__(
        self,
        name: str,
        attr: str,
        kind: int,
        params: list[tuple[Any, bool]],
        returns_value: bool,
        optional: int = 0,
    ) -> None:
        self.name = name
        self.attr = attr
        self.kind = kind
        # (type, is_stream): is_stream parameters receive client-to-server streams of `type` items
        self.params = params
        self.stream_params = sum(1 for _, is_stream in params if is_stream)
        self.returns_value = returns_value
        # trailing value parameters with defaults: the caller may omit them
        self.optional = optional

    @property
    def value_params(self) -> list[Any]:
        return [t for t, is_stream in self.params if not is_stream]


_STREAM_ORIGINS = (collections.abc.AsyncIterator, collections.abc.AsyncIterable)


def _describe(name: str, attr: str, func: Callable[..., Any]) -> HubMethod:
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # an annotation that cannot be resolved is a programming error
        raise TypeError(f"hub method {attr!r}: cannot resolve its annotations: {exc}") from exc
    signature = inspect.signature(func)
    params: list[tuple[Any, bool]] = []
    optional = 0
    for param in list(signature.parameters.values())[1:]:  # skip self
        if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            raise TypeError(f"hub method {attr!r}: parameter {param.name!r} must be positional")
        annotation = hints.get(param.name, Any)
        origin = typing.get_origin(annotation)
        if origin in _STREAM_ORIGINS:
            (item_type,) = typing.get_args(annotation) or (Any,)
            params.append((item_type, True))
        else:
            params.append((annotation, False))
            optional = optional + 1 if param.default is not param.empty else 0
    kind = MethodKind.STREAM if inspect.isasyncgenfunction(func) else MethodKind.PLAIN
    returns = hints.get("return", Any)
    returns_value = returns is not type(None) and returns is not None
    if optional and params[-1][1]:
        optional = 0  # defaults are optional only at the end, after any stream parameter
    return HubMethod(name, attr, kind, params, returns_value, optional)


class HubMethods:
    """The method table of one hub class, keyed by lower-cased wire name."""

    def __init__(self, hub_class: type) -> None:
        self.by_name: dict[str, HubMethod] = {}
        for attr in dir(hub_class):
            if attr.startswith("_") or attr in _RESERVED:
                continue
            func = getattr(hub_class, attr)
            if not (inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)):
                continue
            name = getattr(func, _NAME_ATTR, attr)
            key = name.lower()
            if key in self.by_name:
                raise TypeError(f"hub {hub_class.__name__}: two methods are named {name!r}")
            self.by_name[key] = _describe(name, attr, func)

    def find(self, target: str) -> HubMethod | None:
        return self.by_name.get(target.lower())


_tables: dict[type, HubMethods] = {}


def methods_of(hub_class: type) -> HubMethods:
    """The (cached) method table of ``hub_class``."""
    table = _tables.get(hub_class)
    if table is None:
        table = _tables[hub_class] = HubMethods(hub_class)
    return table
