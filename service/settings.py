"""One place where crosswalk reads its environment: every CROSSWALK_* setting, read once.

`get_settings()` reads the environment on first use and returns that same object afterwards; the
service passes it down, and the libraries (models/, training/, monitors/) take what they need as
arguments. Tests that change the environment call `get_settings.cache_clear()`.
"""

from __future__ import annotations

import stat
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from monitors.webhooks import UrlPolicy


class Settings(BaseSettings):
    """The service's configuration; frozen, so it is hashable and can key per-setting caches."""

    model_config = SettingsConfigDict(env_prefix="CROSSWALK_", env_ignore_empty=True, frozen=True)

    # CROSSWALK_HOME: every piece of state: caches, loaded terminologies, the embedded store
    home: Path = Field(default_factory=lambda: Path.home() / ".crosswalk", validate_default=True)
    # CROSSWALK_DATABASE_URL: the review store (default: embedded SQLite, <home>/crosswalk.db)
    database_url: str = Field(default="", validate_default=True)
    # CROSSWALK_MLFLOW_TRACKING_URI: the model registry (default: embedded, <home>/mlflow.db)
    mlflow_tracking_uri: str | None = None
    # CROSSWALK_DB_POOL_SIZE: requests that hold a store connection at once (the rest wait their turn);
    # CROSSWALK_DB_MAX_OVERFLOW: extra connections for background work (webhook deliveries)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    # CROSSWALK_ACTOR: who the audit log names for CLI changes (default: cli:<OS user>)
    actor: str | None = None
    # CROSSWALK_WEBHOOK_ALLOW_HTTP: let webhooks post over plain http (default: https only)
    webhook_allow_http: bool = False
    # CROSSWALK_WEBHOOK_ALLOW_HOSTS: comma-separated host names or IPs webhooks may post to even though they
    # are private, loopback or link-local (e.g. an in-house receiver); every other such address is refused
    webhook_allow_hosts: str = ""
    # CROSSWALK_DASK_SCHEDULER: a Dask cluster (tcp://HOST:8786, or local:N for N local worker processes) that
    # scores batches given as globs or of CROSSWALK_DASK_MIN_BYTES and more, partition by partition where
    # they live (default: none, every batch is scored in memory)
    dask_scheduler: str | None = None
    dask_min_bytes: int = Field(default=256 * 2**20, ge=0)

    @field_validator("home")
    @classmethod
    def _expand_home(cls, home: Path) -> Path:
        return home.expanduser()

    @field_validator("database_url")
    @classmethod
    def _embedded_store(cls, url: str, info: ValidationInfo) -> str:
        home = info.data.get("home")
        if url or home is None:
            return url
        return f"sqlite:///{home / 'crosswalk.db'}"

    @property
    def webhook_policy(self) -> UrlPolicy:
        from monitors.webhooks import UrlPolicy  # monitors/ imports pandas: only when webhooks are used

        hosts = frozenset(h.strip().lower().rstrip(".") for h in self.webhook_allow_hosts.split(",") if h.strip())
        return UrlPolicy(allow_http=self.webhook_allow_http, allow_hosts=hosts)

    @property
    def terminologies_dir(self) -> Path:
        return self.home / "terminologies"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


@cache
def get_settings() -> Settings:
    """The settings this process runs with, read from the environment once."""
    return Settings()


PRIVATE_UMASK = 0o077  # files 0600, folders 0700: the store, uploads and reports hold patient-level data


def secure_home(home: Path) -> str | None:
    """Create `home` 0700, or tighten it to 0700 when other users may enter it; a warning line if it was
    too open (or could not be fixed), else None. Folders below need no check: nobody else can reach them."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(home.stat().st_mode)
    if not mode & 0o077:
        return None
    try:
        home.chmod(0o700)
    except OSError as error:
        return f"{home} is open to other users (mode {mode:o}) and could not be fixed: {error.strerror}"
    return f"{home} was open to other users (mode {mode:o}); now 0700"
