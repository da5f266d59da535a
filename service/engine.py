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
    terminology = catalog(settings).get(terminology_name)
    return Suggester(terminology, bundled_encoder(settings), cache_dir=settings.cache_dir, progress=progress)
