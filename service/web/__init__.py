"""The web layer: `app.create_app` assembles the HTTP API (`service/api/`) and the review UI (`service/ui/`)
on one store. Both use the dependencies in `deps.py` and the role table in `roles.py`; neither imports
the other. (Nothing is imported here, so `web.deps` loads without the app that imports the UI.)"""
