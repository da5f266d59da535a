"""MLflow tracking and Model Registry for crosswalk's mapping models.

Embedded by default: a SQLite store `<home>/mlflow.db` with artifacts in `<home>/mlartifacts`;
a caller that gives a tracking URI points at a real MLflow server (or any store URI) instead (the
service reads it from CROSSWALK_MLFLOW_TRACKING_URI; this library reads no environment). The client
is made with explicit URIs, never through mlflow's process-wide defaults, so several stores can be
used side by side (tests) and an MLFLOW_TRACKING_URI meant for something else is left alone.

Registered models are named `crosswalk-<terminology>`; the alias `champion` marks the serving
version, `challenger` the latest candidate.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

EXPERIMENT = "crosswalk-retraining"
CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_ARTIFACT = "model"  # the run's artifact folder that a registered version points at


def tracking_uri(home: Path, uri: str | None = None) -> str:
    """`uri` when given, else the embedded store under `home`."""
    return uri or f"sqlite:///{Path(home) / 'mlflow.db'}"


def configured(home: Path, uri: str | None = None) -> bool:
    """Is there a registry to read? (Reading must not create an embedded store as a side effect.)"""
    return bool(uri) or (Path(home) / "mlflow.db").exists()


def registered_name(terminology: str) -> str:
    return f"crosswalk-{terminology}"


def model_uri(name: str, version: str | int) -> str:
    """What a suggestion batch stores as its model_version when served from the registry."""
    return f"models:/{name}/{version}"


def parse_model_uri(value: str) -> tuple[str, str] | None:
    if not value.startswith("models:/"):
        return None
    name, _, version = value.removeprefix("models:/").rpartition("/")
    return (name, version) if name and version.isdigit() else None


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    created: int  # ms since the epoch


class Registry:
    """A thin, typed face on `MlflowClient` for what crosswalk tracks."""

    def __init__(self, home: Path, uri: str | None = None):
        from mlflow import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating tables" chatter on every start
        self.home = Path(home)
        self.uri = tracking_uri(self.home, uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    # -- runs ---------------------------------------------------------------------------------------
    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        location = (self.home / "mlartifacts").as_uri() if self.uri.startswith("sqlite:") else None
        return self.client.create_experiment(EXPERIMENT, artifact_location=location)

    def log_run(
        self,
        name: str,
        params: Mapping[str, object],
        metrics: Mapping[str, float],
        artifacts: Mapping[str, Path],
        tags: Mapping[str, str] | None = None,
    ) -> str:
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment_id(), run_name=name, tags=dict(tags or {}))
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        try:
            self.client.log_batch(
                run_id,
                metrics=[Metric(_key(k), float(v), now, 0) for k, v in metrics.items()],
                params=[Param(_key(k), str(v)[:6000]) for k, v in params.items()],
                tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
            )
            for artifact_path, local in artifacts.items():
                if Path(local).is_dir():
                    self.client.log_artifacts(run_id, str(local), artifact_path)
                else:
                    self.client.log_artifact(run_id, str(local), artifact_path or None)
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def run(self, run_id: str):
        return self.client.get_run(run_id)

    # -- registry -----------------------------------------------------------------------------------
    def register(self, name: str, run_id: str, description: str = "") -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name, description="crosswalk mapping model: encoder + fusion")
        version = self.client.create_model_version(
            name, f"runs:/{run_id}/{MODEL_ARTIFACT}", run_id=run_id, description=description
        )
        return str(version.version)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        self.client.delete_registered_model_alias(name, alias)

    def alias(self, name: str, alias: str) -> VersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            return _info(self.client.get_model_version_by_alias(name, alias))
        except MlflowException:  # no such model or alias
            return None

    def version(self, name: str, version: str) -> VersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            return _info(self.client.get_model_version(name, str(version)))
        except MlflowException:
            return None

    def versions(self, name: str | None = None) -> list[VersionInfo]:
        query = f"name = '{name}'" if name else ""
        found = self.client.search_model_versions(query)
        # search results carry no aliases: read them from each registered model once
        aliases: dict[tuple[str, str], list[str]] = {}
        for model_name in {v.name for v in found}:
            for alias, version in (self.client.get_registered_model(model_name).aliases or {}).items():
                aliases.setdefault((model_name, str(version)), []).append(alias)
        infos = [_info(v, tuple(sorted(aliases.get((v.name, str(v.version)), ())))) for v in found]
        return sorted(infos, key=lambda v: (v.name, int(v.version)))

    def download(self, info: VersionInfo, dest: Path) -> Path:
        """The version's model folder under `dest` (downloaded once, then reused)."""
        if dest.exists():
            return dest
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        local = Path(self.client.download_artifacts(info.run_id, MODEL_ARTIFACT, str(tmp)))
        local.replace(dest)
        shutil.rmtree(tmp, ignore_errors=True)
        return dest


def _info(version, aliases: tuple[str, ...] | None = None) -> VersionInfo:
    aliases = aliases if aliases is not None else tuple(getattr(version, "aliases", None) or ())
    return VersionInfo(
        version.name, str(version.version), version.run_id, aliases, int(version.creation_timestamp or 0)
    )


def _key(name: str) -> str:
    """MLflow keys allow letters, digits, `_ - . / space`: acc@1 -> acc_at_1."""
    return name.replace("@", "_at_")


def metric_name(key: str) -> str:
    return _key(key)
