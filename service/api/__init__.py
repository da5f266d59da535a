"""The review service's HTTP API (FastAPI): `create_app` builds it; one router module per resource."""

from service.api.app import create_app

__all__ = ["create_app"]
