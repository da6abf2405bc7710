"""``diffsuite report``: see ``diffsuite.study.cli``."""
from .cli import configure_report as configure

__all__ = ["configure"]
