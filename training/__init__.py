"""Training: turns approved mappings into better mapping models, tracked in MLflow.

A library: imports `models/`, never `service/`.
"""
