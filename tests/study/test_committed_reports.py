"""The committed reports are what the code makes of their stored results: rebuilding them (``diffsuite report``,
no measuring) changes no text. A change to the report code that alters a committed report must rebuild it."""
import shutil
from pathlib import Path

from diffsuite.study.report import rebuild

REPORTS = Path(__file__).resolve().parents[2] / "reports"


def test_rebuilding_the_committed_reports_changes_no_text(tmp_path):
    copy = tmp_path / "reports"
    shutil.copytree(REPORTS, copy)
    rebuild(copy)
    texts = sorted(p.relative_to(REPORTS) for p in REPORTS.rglob("*")
                   if p.suffix in (".md", ".json", ".html") and p.name != "meta.json")
    assert texts, "no committed report text found"
    changed = [str(p) for p in texts if (copy / p).read_text() != (REPORTS / p).read_text()]
    assert changed == [], f"rebuilt from their stored results, these differ from the committed files: {changed}"
