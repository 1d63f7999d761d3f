from __future__ import annotations

from pathlib import Path

import pytest

from streamport.errors import ConfigError
from streamport.settings import Settings, load_settings


def test_precedence_cli_over_env_over_file_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "streamport.yaml"
    config.write_text("port: 7000\nfsync: always\nmax_record_bytes: 10\nhost: 127.0.0.2\n")
    monkeypatch.setenv("STREAMPORT_FSYNC", "never")
    monkeypatch.setenv("STREAMPORT_HOST", "127.0.0.3")
    settings = load_settings({"host": "127.0.0.4", "port": None}, config)
    assert settings.host == "127.0.0.4"  # command line
    assert settings.fsync == "never"  # environment
    assert settings.port == 7000  # file (None on the command line means not given)
    assert settings.max_record_bytes == 10
    assert settings.auto_create_topics is True  # default


def test_toml_config(tmp_path: Path) -> None:
    config = tmp_path / "streamport.toml"
    config.write_text('broker = "kafka://127.0.0.1:9092"\n')
    settings = load_settings(None, config)
    assert settings.kafka_bootstrap == "127.0.0.1:9092"


def test_bad_values_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="broker"):
        load_settings({"broker": "redis://x"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(None, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError):
        load_settings({"port": 70000})


def test_auth_off_only_on_loopback() -> None:
    Settings(auth=False, host="127.0.0.1").check_auth_allowed()
    Settings(auth=False, host="::1").check_auth_allowed()
    with pytest.raises(ConfigError, match="loopback"):
        Settings(auth=False, host="0.0.0.0").check_auth_allowed()
