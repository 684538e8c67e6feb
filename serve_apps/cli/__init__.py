"""The ``salesboost`` command: one module per command group (``main`` assembles them)."""

from serve_apps.cli.main import app

__all__ = ["app"]
