"""Parameter and event definitions: descriptions of the ids a stream carries.

On the wire a definition has no location; the location is the path of groups that holds it
(``/chassis/engine`` = group ``chassis`` -> child group ``engine``). The APIs send flat lists with
a ``Location`` each; :meth:`ParameterDefinitions.from_flat` builds the tree and
:meth:`ParameterDefinitions.flatten` walks it back.

Example::

    defs = ParameterDefinitions.from_flat([("/chassis/engine", ParameterDefinition(id="rpm"))])
    assert defs.flatten() == [("/chassis/engine", ParameterDefinition(id="rpm"))]
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TypeVar

import msgspec

from streamport.errors import ValidationError
from streamport.model.data import check_id

__all__ = [
    "EventDefinition",
    "EventDefinitions",
    "EventGroup",
    "EventLevel",
    "ParameterDefinition",
    "ParameterDefinitions",
    "ParameterGroup",
    "normalize_location",
]


class EventLevel(enum.Enum):
    """Severity of an event. The wire carries the name; numbers 0-5 are accepted on read."""

    TRACE = "Trace"
    DEBUG = "Debug"
    INFORMATION = "Information"
    WARNING = "Warning"
    ERROR = "Error"
    CRITICAL = "Critical"

    @classmethod
    def parse(cls, value: object, field: str = "level") -> EventLevel:
        """Accept an ``EventLevel``, its name (any case) or its number 0 (Trace) .. 5 (Critical)."""
        if isinstance(value, EventLevel):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value < len(_LEVELS):
                return _LEVELS[value]
        elif isinstance(value, str):
            found = _LEVEL_NAMES.get(value.lower())
            if found is not None:
                return found
        names = ", ".join(level.value for level in _LEVELS)
        raise ValidationError(f"level must be one of {names} or 0-5, got {value!r}", field=field)


_LEVELS = tuple(EventLevel)
_LEVEL_NAMES = {level.value.lower(): level for level in _LEVELS}


class ParameterDefinition(msgspec.Struct, rename="pascal", kw_only=True):
    """Describes a parameter id: display name, range, unit, format and custom properties."""

    id: str
    name: str | None = None
    description: str | None = None
    minimum_value: float | None = None
    maximum_value: float | None = None
    unit: str | None = None
    format: str | None = None
    custom_properties: str | None = None


class ParameterGroup(msgspec.Struct, rename="pascal", kw_only=True):
    name: str
    description: str | None = None
    custom_properties: str | None = None
    child_groups: list[ParameterGroup] = []
    parameters: list[ParameterDefinition] = []


class EventDefinition(msgspec.Struct, rename="pascal", kw_only=True):
    """Describes an event id: display name, level and custom properties."""

    id: str
    name: str | None = None
    description: str | None = None
    custom_properties: str | None = None
    level: EventLevel = EventLevel.INFORMATION


class EventGroup(msgspec.Struct, rename="pascal", kw_only=True):
    name: str
    description: str | None = None
    custom_properties: str | None = None
    child_groups: list[EventGroup] = []
    events: list[EventDefinition] = []


def normalize_location(location: str | None) -> str:
    """``None``, ``""`` and ``"/"`` are the root ``"/"``; else ``/a/b`` (no empty parts)."""
    parts = [part for part in (location or "").split("/") if part]
    return "/" + "/".join(parts)


def _path(location: str | None) -> list[str]:
    return [part for part in (location or "").split("/") if part]


class ParameterDefinitions(msgspec.Struct, rename="pascal", kw_only=True):
    """Quix ``ParameterDefinitions``: root parameters plus a tree of groups."""

    parameter_groups: list[ParameterGroup] = []
    parameters: list[ParameterDefinition] = []

    @classmethod
    def from_flat(
        cls, items: Iterable[tuple[str | None, ParameterDefinition]]
    ) -> ParameterDefinitions:
        """Build the group tree from ``(location, definition)`` pairs, keeping their order."""
        root = cls()
        for location, definition in items:
            groups, target = root.parameter_groups, root.parameters
            for part in _path(location):
                group = _find_or_add(groups, part, ParameterGroup)
                groups, target = group.child_groups, group.parameters
            target.append(definition)
        return root

    def flatten(self) -> list[tuple[str, ParameterDefinition]]:
        """``(location, definition)`` for every definition, depth first, root first."""
        out: list[tuple[str, ParameterDefinition]] = [("/", d) for d in self.parameters]
        _walk_parameters(self.parameter_groups, "", out)
        return out

    def validate(self) -> None:
        for index, (_, definition) in enumerate(self.flatten()):
            check_id(definition.id, f"[{index}].id", "parameter id")


class EventDefinitions(msgspec.Struct, rename="pascal", kw_only=True):
    """Quix ``EventDefinitions``: root events plus a tree of groups."""

    event_groups: list[EventGroup] = []
    events: list[EventDefinition] = []

    @classmethod
    def from_flat(cls, items: Iterable[tuple[str | None, EventDefinition]]) -> EventDefinitions:
        """Build the group tree from ``(location, definition)`` pairs, keeping their order."""
        root = cls()
        for location, definition in items:
            groups, target = root.event_groups, root.events
            for part in _path(location):
                group = _find_or_add(groups, part, EventGroup)
                groups, target = group.child_groups, group.events
            target.append(definition)
        return root

    def flatten(self) -> list[tuple[str, EventDefinition]]:
        out: list[tuple[str, EventDefinition]] = [("/", d) for d in self.events]
        _walk_events(self.event_groups, "", out)
        return out

    def validate(self) -> None:
        for index, (_, definition) in enumerate(self.flatten()):
            check_id(definition.id, f"[{index}].id", "event id")


_G = TypeVar("_G", ParameterGroup, EventGroup)


def _find_or_add(groups: list[_G], name: str, factory: type[_G]) -> _G:
    for group in groups:
        if group.name == name:
            return group
    group = factory(name=name)
    groups.append(group)
    return group


def _walk_parameters(
    groups: list[ParameterGroup], prefix: str, out: list[tuple[str, ParameterDefinition]]
) -> None:
    for group in groups:
        location = f"{prefix}/{group.name}"
        out.extend((location, d) for d in group.parameters)
        _walk_parameters(group.child_groups, location, out)


def _walk_events(
    groups: list[EventGroup], prefix: str, out: list[tuple[str, EventDefinition]]
) -> None:
    for group in groups:
        location = f"{prefix}/{group.name}"
        out.extend((location, d) for d in group.events)
        _walk_events(group.child_groups, location, out)
