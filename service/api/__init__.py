"""The review service's HTTP API (FastAPI): one router module per resource under `routes/`, the
problem+json errors in `problems.py`. `service.web` assembles it with the UI."""
