"""One place where crosswalk reads its environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path  # every piece of state: caches, loaded terminologies, the embedded store

    @property
    def terminologies_dir(self) -> Path:
        return self.home / "terminologies"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def database_url(self) -> str:
        return os.environ.get("CROSSWALK_DATABASE_URL") or f"sqlite:///{self.home / 'crosswalk.db'}"


def get_settings() -> Settings:
    home = Path(os.environ.get("CROSSWALK_HOME") or Path.home() / ".crosswalk").expanduser()
    return Settings(home=home)
