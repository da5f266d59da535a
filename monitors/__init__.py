"""Monitors: profiles, data-quality checks, drift and anomaly scoring of integrated data batches.

A library: plain data in, plain data (findings, alerts) out; never imports `service/`.
"""
