"""crosswalk's front door: CLI, settings, persistence and (later) the web API and UI.

`service/` composes the libraries `models/`, `monitors/` and `training/`; they never import it.
"""
