"""The web layer: `create_app` assembles the HTTP API (`service/api/`) and the review UI (`service/ui/`)
on one store. Both use the dependencies in `deps.py` and the role table in `roles.py`; neither
imports the other."""

from service.web.app import create_app

__all__ = ["create_app"]
