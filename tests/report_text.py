"""A study report's prose as one string, for tests that read what its sentences say."""
from diffsuite.study.report import Bullets, Para


def report_text(rep) -> str:
    """The text of ``rep``'s paragraphs and bullet items, one per line, in order."""
    parts = []
    for b in rep.blocks:
        if isinstance(b, Para):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.extend(b.items)
    return "\n".join(parts)
