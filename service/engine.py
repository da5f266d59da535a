"""Builds the mapping engine (a `models.suggest.Suggester`) for a catalog terminology, once."""

from __future__ import annotations

from functools import lru_cache

from models.catalog import Catalog
from models.dense import OnnxEncoder
from models.suggest import Suggester
from service.settings import Settings


def catalog(settings: Settings) -> Catalog:
    return Catalog(settings.terminologies_dir)


@lru_cache(maxsize=1)
def bundled_encoder(settings: Settings) -> OnnxEncoder:
    return OnnxEncoder(export_dir=settings.cache_dir)


@lru_cache(maxsize=4)
def get_suggester(settings: Settings, terminology_name: str, progress: bool = False) -> Suggester:
    """The suggester for a terminology; the first call per data directory may encode concepts."""
    return build_suggester(settings, terminology_name, progress)


def build_suggester(settings: Settings, terminology_name: str, progress: bool = False) -> Suggester:
    """The registry's `champion` for the terminology when there is one (issue 5), else the bundled model."""
    from service.retraining import champion_suggester

    terminology = catalog(settings).get(terminology_name)
    champion = champion_suggester(settings, terminology, progress)
    if champion is not None:
        return champion
    return Suggester(terminology, bundled_encoder(settings), cache_dir=settings.cache_dir, progress=progress)
