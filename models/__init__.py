"""Mapping models: terminologies, lexical and dense matchers, fusion and ranking.

A library: it never imports `service/`, `monitors/` or `training/`, and takes every path it
writes to (caches, catalogs) as an argument instead of reading the environment.
"""
