"""Shared helpers for every section: device choice, training loops, data, plotting, notebooks.

Nothing in `utils` imports section code (`solutions/`) or checkers (`tests/`).
"""
