"""Typed settings: secrets and endpoints from `KPBOT_*` environment variables,
everything else from the TOML files in this folder (or a folder named by
`KPBOT_CONFIG_DIR`). Nothing is read at import time: call `load_settings()`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


class ConfigError(ValueError):
    """A configuration problem, naming the file, the key and what is wrong."""

    def __init__(self, file: str | Path, key: str, problem: str):
        self.file = str(file)
        self.key = key
        self.problem = problem
        super().__init__(f"{file}: {key}: {problem}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KPBOT_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""  # default: SQLite in data_dir
    database_schema: str = ""  # PostgreSQL: keep kpbot's tables in this schema
    config_dir: Path = PACKAGE_DIR
    host: str = "127.0.0.1"
    port: int = 8080
    timezone: str = "Asia/Shanghai"
    public_url: str = ""  # how people reach /sim and downloads; default http://host:port
    max_body_bytes: int = 256 * 1024
    load_demo_org: bool = True  # load config/org.toml into an empty database at start
    simulator: Literal["auto", "on", "off"] = "auto"
    log_level: str = "INFO"

    wecom_corp_id: str = ""
    wecom_agent_id: int | None = None
    wecom_secret: str = ""
    wecom_token: str = ""
    wecom_aes_key: str = ""
    wecom_api_base: str = "https://qyapi.weixin.qq.com"

    dingtalk_app_key: str = ""
    dingtalk_app_secret: str = ""
    dingtalk_robot_code: str = ""
    dingtalk_api_base: str = "https://api.dingtalk.com"
    dingtalk_oapi_base: str = "https://oapi.dingtalk.com"
    dingtalk_mode: Literal["stream", "http"] = "stream"
    dingtalk_agent_id: int | None = None  # work notifications need the app's agent id

    dispatch_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_poll_seconds: float = Field(default=0.5, gt=0)
    outbox_max_attempts: int = Field(default=8, ge=1)
    scheduler_enabled: bool = True
    dispatcher_enabled: bool = True  # false: an instance that only receives and stores

    @field_validator("wecom_aes_key")
    @classmethod
    def _aes_key_length(cls, value: str) -> str:
        if value and len(value) != 43:
            raise ValueError("KPBOT_WECOM_AES_KEY must be the 43-character EncodingAESKey")
        return value

    # -- derived -----------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'kpbot.db').resolve()}"

    @property
    def wecom_enabled(self) -> bool:
        return bool(
            self.wecom_corp_id and self.wecom_agent_id and self.wecom_secret and self.wecom_token and self.wecom_aes_key
        )

    @property
    def dingtalk_enabled(self) -> bool:
        return bool(self.dingtalk_app_key and self.dingtalk_app_secret)

    @property
    def simulator_enabled(self) -> bool:
        if self.simulator == "auto":
            return not (self.wecom_enabled or self.dingtalk_enabled)
        return self.simulator == "on"

    def config_file(self, name: str) -> Path:
        return self.config_dir / name


def load_settings(**overrides) -> Settings:
    return Settings(**overrides)


def read_toml(path: Path) -> dict:
    """Read a TOML file, turning syntax errors into a ConfigError naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "-", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "-", f"not valid TOML: {exc}") from None
