"""What the service serves from the catalog: target terminologies for decisions, suggesters for ranking.

Two caches, one each, shared by the API, the UI and the CLI in a process:
- `terminologies(settings)`: each catalog terminology read once. A decision looks its concept up
  here: a catalog read, never a model build, so the write path holds no lock while matchers load.
- `served_suggesters(settings)`: the serving model per terminology (the registry's champion, else the
  bundled model), built on first use and swapped whole by `reload`; in the service, each worker process
  reloads by itself when a promotion is recorded in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

from models.catalog import Catalog, UnknownTerminology
from models.dense import OnnxEncoder
from models.fields.serving import FORMAT as TARGET_MODEL
from models.fields.serving import FieldTerminologySuggester, as_terminology
from models.fields.suggest import FieldSuggester
from models.fields.targets import TargetCatalog
from models.suggest import Suggester
from models.terminology import Concept, Terminology
from service.settings import Settings
from service.store.db import session_scope
from service.store.errors import Invalid
from service.store.registry import promotion_stamp

log = logging.getLogger("crosswalk.engine")
PROMOTION_CHECK_S = 5.0  # how stale a worker's champion may be after a promotion elsewhere


def catalog(settings: Settings) -> Catalog:
    return Catalog(settings.terminologies_dir)


class Terminologies:
    """Terminologies by name, each read once and kept until its file changes.

    `read` is the catalog's `get` and `stamp` its `stamp` (so a `crosswalk terminology update` is seen by
    the next decision); a service started on injected suggesters (tests, benchmarks) reads theirs, with
    no stamp: they are asked each time and keep their own.
    """

    def __init__(
        self,
        read: Callable[[str], Terminology],
        stamp: Callable[[str], Any] | None = None,
        names: Callable[[], list[str]] | None = None,
    ):
        self._read, self._stamp, self._names = read, stamp, names
        self._kept: dict[str, tuple[Any, Terminology]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Terminology:
        """The terminology; `UnknownTerminology` when the catalog has none of that name."""
        if self._stamp is None:
            return self._read(name)
        stamp = self._stamp(name)
        kept = self._kept.get(name)
        if kept is None or kept[0] != stamp:
            with self._lock:
                kept = self._kept.get(name)
                if kept is None or kept[0] != stamp:
                    kept = self._kept[name] = (stamp, self._read(name))
        return kept[1]

    def require(self, name: str) -> None:
        """Refuse a name that is not a loaded terminology (a project's target), without loading it."""
        if self._names is None:
            known(lambda: self.get(name))
        elif name not in self._names():
            loaded = ", ".join(self._names()) or "none"
            raise Invalid(
                f"unknown terminology {name!r}; loaded: {loaded}. "
                "Load one with `crosswalk terminology load --format FORMAT PATH --name NAME`"
            )

    def target(self, name: str) -> LazyTerminology:
        """The terminology as a decision's target, read only if the decision names a concept;
        an unknown name is the request's problem (Invalid), not the service's."""
        return LazyTerminology(lambda: known(lambda: self.get(name)))


class LazyTerminology:
    """A target terminology read on first use: reject and flag never read it."""

    def __init__(self, load: Callable[[], Terminology]):
        self._load = load

    @property
    def terminology(self) -> Terminology:
        return self._load()

    @property
    def version(self) -> str:
        return self.terminology.version

    def get(self, code: str) -> Concept | None:
        return self.terminology.get(code)


class ServedSuggesters:
    """The serving suggesters by terminology: built on first use, swapped whole on `reload`.

    A reload builds the new suggesters first and then replaces the references; a request that
    already holds the old suggester finishes with it, later ones get the new one: none is dropped.

    The service `follow`s the store's promotions, so a promotion made through another process (the
    CLI, another service worker) reaches this one without a `POST /models/reload` to each.
    """

    def __init__(self, build: Callable[..., Any]):
        self._build = build
        self._stamp: Callable[[], Any] | None = None
        self._check_every_s = 0.0
        self._served: dict[str, Any] = {}
        self._lock = threading.Lock()  # one build per terminology at a time
        self._checking = threading.Lock()  # one stamp check at a time
        self._seen: Any = None  # the stamp the served suggesters are at least as new as
        self._next_check = 0.0

    def __call__(self, terminology: str, progress: bool = False):
        self._follow_promotions()
        served = self._served.get(terminology)
        if served is None:
            with self._lock:
                served = self._served.get(terminology)
                if served is None:
                    served = self._served[terminology] = self._build(terminology, progress)
        return served

    def reload(self) -> dict[str, str]:
        with self._lock:
            self._seen = self._read_stamp()  # read before building: a promotion during the build is not missed
            fresh = {name: self._build(name, False) for name in list(self._served)}
            self._served.update(fresh)
        return {name: s.model_version for name, s in fresh.items()}

    def follow(self, stamp: Callable[[], Any], check_every_s: float) -> None:
        """Read `stamp` (the latest promotion) at most every `check_every_s` seconds as requests come in;
        when it has changed, reload in the background (requests meanwhile keep the old models)."""
        self._stamp, self._check_every_s = stamp, check_every_s

    def _follow_promotions(self) -> None:
        if self._stamp is None or time.monotonic() < self._next_check or not self._checking.acquire(blocking=False):
            return
        try:
            self._next_check = time.monotonic() + self._check_every_s
            stamp = self._read_stamp()
            if self._seen is None or not self._served:
                self._seen = stamp  # what is built from here on is at least this new
            elif stamp is not None and stamp != self._seen:
                self._seen = stamp
                threading.Thread(target=self._reload_quietly, name="crosswalk-model-reload", daemon=True).start()
        finally:
            self._checking.release()

    def _reload_quietly(self) -> None:
        try:
            for terminology, version in self.reload().items():
                log.info("serving %s with %s (promoted)", terminology, version)
        except Exception as error:  # noqa: BLE001 - the old models keep serving; a later promotion retries
            log.error("reloading the promoted models failed: %s", error)

    def _read_stamp(self) -> Any:
        if self._stamp is None:
            return None
        try:
            return self._stamp()
        except Exception as error:  # noqa: BLE001 - a store hiccup must not fail the request being served
            log.warning("could not read the model registry's promotions: %s", type(error).__name__)
            return None


def known(load: Callable[[], Any]) -> Any:
    """`load()`, with an unknown terminology turned into a request error that says how to load it."""
    try:
        return load()
    except UnknownTerminology as error:
        raise Invalid(f"{error}; load it with `crosswalk terminology load`") from None


def target_catalog(settings: Settings) -> TargetCatalog:
    """Target data models (OMOP CDM, FHIR R4, loaded schemas): the terminologies of field mappings."""
    return TargetCatalog(settings.home / "targets")


@lru_cache(maxsize=4)
def terminologies(settings: Settings) -> Terminologies:
    """Catalog terminologies, then target data models under their names (`omop-cdm-5.4`, ...)."""
    found, targets = catalog(settings), target_catalog(settings)

    def read(name: str) -> Terminology:
        if name in found.names() or name not in targets.names():
            return found.get(name)
        return as_terminology(targets.get(name))

    def stamp(name: str) -> Any:
        loaded = targets.folder / f"{name}.csv"
        return found.stamp(name) or (loaded.stat().st_mtime_ns if loaded.is_file() else None)

    return Terminologies(read, stamp, lambda: [*found.names(), *targets.names()])


@lru_cache(maxsize=4)
def served_suggesters(settings: Settings) -> ServedSuggesters:
    return ServedSuggesters(lambda name, progress: build_suggester(settings, name, progress))


def latest_promotion(engine: Engine) -> int:
    """The store's promotion stamp (`ServedSuggesters.follow`'s `stamp`)."""
    with session_scope(engine) as session:
        return promotion_stamp(session)


def get_suggester(settings: Settings, terminology_name: str, progress: bool = False) -> Suggester:
    """The serving suggester for a terminology; the first call per data directory may encode concepts."""
    return served_suggesters(settings)(terminology_name, progress)


@lru_cache(maxsize=1)
def bundled_encoder(settings: Settings) -> OnnxEncoder:
    return OnnxEncoder(export_dir=settings.cache_dir)


def build_suggester(settings: Settings, terminology_name: str, progress: bool = False) -> Suggester:
    """The registry's `champion` for the terminology when there is one, else the bundled model; for a
    target data model, the field suggester."""
    from service.retraining import champion_suggester  # imports MLflow: only when a model is built

    terminology = terminologies(settings).get(terminology_name)
    if terminology.format == TARGET_MODEL:
        model = target_catalog(settings).get(terminology_name)
        fitted = FieldSuggester(bundled_encoder(settings), cache_dir=settings.cache_dir).fit(model)
        return FieldTerminologySuggester(fitted, model)
    champion = champion_suggester(settings, terminology, progress)
    if champion is not None:
        return champion
    return Suggester(terminology, bundled_encoder(settings), cache_dir=settings.cache_dir, progress=progress)
