"""Typed connector settings, bound from a YAML file and environment variables.

Every connector declares one frozen pydantic model, a subclass of `SourceConfig` or
`DestinationConfig`. Precedence: command line overrides > ``STREAMPORT_CONNECTOR_<FIELD>``
environment variables > the YAML file > defaults. Secrets are `SecretStr`: never logged, shown as
``**********``. The environment is handed in by the entry point (library code never reads it).

Example::

    config = bind_config(RestConfig, file=Path("rest.yaml"), environ=os.environ)
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic import ValidationError as PydanticValidationError

from streamport.broker import OffsetReset
from streamport.errors import ConfigError

ENV_PREFIX = "STREAMPORT_CONNECTOR_"


class ConnectorConfig(BaseModel):
    """Settings every connector has: where the platform is and how hard to retry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(
        default="http://127.0.0.1:8080",
        description="streamport server URL (ignored when 'kafka' is set)",
    )
    token: SecretStr | None = Field(default=None, description="streamport access token")
    kafka: str | None = Field(
        default=None, description="Kafka bootstrap servers HOST:PORT[,...]: talk to Kafka directly"
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict, description="extra librdkafka properties (security.*, sasl.*)"
    )
    retry_initial: float = Field(default=0.2, gt=0, description="first retry delay, seconds")
    retry_max: float = Field(default=10.0, gt=0, description="longest retry delay, seconds")
    dead_letter_topic: str | None = Field(
        default=None,
        description="where poison records go, with the error in headers "
        "[default: <topic>-dead-letter]",
    )


class SourceConfig(ConnectorConfig):
    output_topic: str = Field(description="topic the source writes to")


class DestinationConfig(ConnectorConfig):
    input_topic: str = Field(description="topic the destination reads")
    group: str | None = Field(
        default=None, description="consumer group [default: connector-<name>-<input_topic>]"
    )
    offset_reset: OffsetReset = Field(
        default="earliest", description="where a new group starts: earliest or latest"
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="records per write()")
    commit_interval: float = Field(
        default=5.0, gt=0, description="seconds between checkpoints (flush, then commit)"
    )
    commit_every: int = Field(
        default=10_000, ge=1, description="records after which a checkpoint is taken early"
    )


ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


def _is_text(annotation: Any) -> bool:
    """Whether an environment value for this field is taken verbatim (not parsed as YAML)."""
    if annotation in (str, SecretStr, Path):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return all(_is_text(a) for a in args)
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    return False


def from_environ(cls: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The fields of `cls` given as ``STREAMPORT_CONNECTOR_<FIELD>``; non-text values are YAML
    (``[a, b]``, ``{k: v}``, ``true``, ``5``)."""
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None:
            continue
        if _is_text(field.annotation):
            values[name] = raw
        else:
            try:
                values[name] = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} is not valid YAML: {exc}") from exc
    return values


def read_file(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise ConfigError(f"connector config file {str(file)!r} does not exist")
    try:
        loaded = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file} must hold a mapping of setting: value")
    # `connector: NAME` may name the connector in the file; it is not a setting.
    loaded.pop("connector", None)
    return loaded


def bind_config(
    cls: type[ConfigT],
    *,
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> ConfigT:
    """Build `cls` from `defaults` < `file` < `environ` < `overrides` (None values ignored).

    Errors name the setting and what is wrong, never a secret's value.
    """
    values: dict[str, Any] = {k: v for k, v in (defaults or {}).items() if v is not None}
    if file is not None:
        values.update(read_file(file))
    if environ is not None:
        values.update(from_environ(cls, environ))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return cls.model_validate(values)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid connector settings: {problems}") from exc


class FieldInfo(BaseModel):
    """One setting as `streamport connectors describe` shows it."""

    name: str
    type: str
    default: str | None
    required: bool
    secret: bool
    description: str


def _type_name(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(annotation, "__name__", str(annotation))


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))


def describe_fields(cls: type[BaseModel]) -> list[FieldInfo]:
    """The settings of `cls`: name, type, default, required, secret, description."""
    out: list[FieldInfo] = []
    for name, field in cls.model_fields.items():
        required = field.is_required()
        default: str | None = None
        if not required:
            value = field.get_default(call_default_factory=True)
            default = None if value is None else str(value)
        out.append(
            FieldInfo(
                name=name,
                type=_type_name(field.annotation),
                default=default,
                required=required,
                secret=_is_secret(field.annotation),
                description=field.description or "",
            )
        )
    return out
