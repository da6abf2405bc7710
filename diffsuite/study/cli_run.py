"""``diffsuite run``: see ``diffsuite.study.cli``."""
from .cli import configure_run as configure

__all__ = ["configure"]
