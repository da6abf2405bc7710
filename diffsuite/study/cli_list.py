"""``diffsuite list``: see ``diffsuite.study.cli``."""
from .cli import configure_list as configure

__all__ = ["configure"]
