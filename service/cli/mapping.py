"""Mapping commands: suggest, terminology load/list, demo."""

from __future__ import annotations

from service.cli.app import app  # noqa: F401
