"""The one settings object, loaded once at the entry point.

Precedence: command line > ``STREAMPORT_*`` environment > config file (YAML or TOML, given by
``--config`` or ``STREAMPORT_CONFIG``) > defaults. Library code never reads the environment: it is
handed a `Settings` (or the few values it needs).

Example::

    settings = load_settings({"port": 9000}, config_file=Path("streamport.yaml"))
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from streamport.errors import ConfigError

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything a streamport process can be told. Field names map to ``STREAMPORT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMPORT_", frozen=True, extra="forbid")

    data_dir: Path = Field(
        default=Path(".streamport"), description="where the embedded log and tokens live"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    broker: str = Field(
        default="embedded",
        description="'embedded', or kafka://HOST:PORT[,HOST:PORT] for Apache Kafka",
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict,
        description="extra librdkafka properties (security.protocol, sasl.*, ssl.*)",
    )
    fsync: Literal["never", "always"] = Field(
        default="never",
        description="'always' fsyncs before acknowledging (survives power loss, slower); "
        "'never' survives a killed process",
    )
    max_record_bytes: int = Field(default=1 * MiB, gt=0)
    max_body_bytes: int = Field(default=10 * MiB, gt=0)
    auto_create_topics: bool = True
    default_partitions: int = Field(default=1, ge=1)
    auth: bool = Field(
        default=True, description="require access tokens; may be off only on loopback"
    )
    cors_origins: list[str] = Field(default_factory=list)
    url: str = Field(default="http://127.0.0.1:8080", description="server URL used by CLI commands")
    token: SecretStr | None = Field(default=None, description="access token used by CLI commands")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if value != "embedded" and not value.startswith("kafka://"):
            raise ValueError("broker must be 'embedded' or kafka://HOST:PORT[,HOST:PORT]")
        return value

    @property
    def kafka_bootstrap(self) -> str | None:
        """The bootstrap servers of a kafka:// broker URL, or None for the embedded broker."""
        return self.broker.removeprefix("kafka://") if self.broker.startswith("kafka://") else None

    def check_auth_allowed(self) -> None:
        """Refuse to run without auth anywhere but on a loopback address."""
        if not self.auth and not is_loopback(self.host):
            raise ConfigError(
                f"auth can be switched off only on a loopback host, not on {self.host!r}: "
                "remove --no-auth or bind to 127.0.0.1"
            )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        # load_settings passes a config file through a subclass's model_config (see there).
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(
    overrides: dict[str, Any] | None = None, config_file: Path | None = None
) -> Settings:
    """Build the settings: `overrides` (from the command line; None values are ignored) win over
    the environment, which wins over `config_file`, which wins over the defaults."""
    cls: type[Settings] = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file {str(config_file)!r} does not exist")
        key = "toml_file" if config_file.suffix == ".toml" else "yaml_file"
        # pydantic-settings reads the file named in model_config; a throwaway subclass carries it.
        cls = type(
            "FileSettings",
            (Settings,),
            {"model_config": {**Settings.model_config, key: config_file}},
        )
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return cls(**given)
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from exc
