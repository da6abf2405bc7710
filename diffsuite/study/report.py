"""Reports: ``<out>/<study>/report.md`` per study and ``<out>/index.html`` over all of them.

A study's ``report(table, meta, out_dir)`` draws its figures from the stored rows and returns a
``Report``: a list of blocks (headings, paragraphs, tables, figures) plus ``findings``, the numbers
its text quotes, computed from the rows (never typed in). The same blocks render to Markdown and to
HTML, and the findings are saved as ``findings.json`` so anyone can check the text against the data.
``diffsuite report`` calls ``rebuild`` and measures nothing.
"""
from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import StudyError
from .metadata import commits_of, measuring_runs
from .status import MEANING, UNAVAILABLE, install_hint
from .store import RESULTS, ResultStore, dumps, write_atomic_text
from .studies import STUDIES, study_module

INDEX = "index.html"
SECTION = "section.html"  # a study's part of index.html, kept beside its report


# ----- blocks -----
@dataclass
class Heading:
    text: str


@dataclass
class Para:
    text: str  # `code` and **bold** are rendered


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    df: pd.DataFrame
    caption: str = ""


@dataclass
class Figure:
    file: str  # relative to the study's folder
    caption: str


@dataclass
class Report:
    title: str
    question: str
    blocks: list = field(default_factory=list)
    findings: dict = field(default_factory=dict)


def word_list(items: Any) -> str:
    """``a``, ``a and b``, ``a, b and c``: how report text lists things."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def fmt(x: Any, digits: int = 3) -> str:
    """How every number in report text is written: 3 significant digits, ``1.23e-08`` style when small/large."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, (int,)) and not isinstance(x, bool):
        return str(x)
    x = float(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v)
    return "" if v is None else str(v)


# ----- markdown -----
def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def to_markdown(rep: Report, meta: dict | None = None) -> str:
    out = [f"# {rep.title}", "", f"*{rep.question}*", ""]
    for b in rep.blocks:
        if isinstance(b, Heading):
            out += [f"## {b.text}", ""]
        elif isinstance(b, Para):
            out += [b.text, ""]
        elif isinstance(b, Bullets):
            out += [f"- {i}" for i in b.items] + [""]
        elif isinstance(b, Table):
            if b.caption:
                out += [f"**{b.caption}**", ""]
            out += [_md_table(b.df), ""]
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({b.file})", "", f"*{b.caption}*", ""]
    if meta:
        out += ["## Machine and versions", "", _md_table(_meta_table(meta)), ""]
    return "\n".join(out).rstrip() + "\n"


def _meta_table(meta: dict) -> pd.DataFrame:
    libs = ", ".join(f"{k} {v}" for k, v in meta.get("libraries", {}).items() if v)
    th = meta.get("threads", {})
    # the commits the rows were measured from, not that of a later invocation that measured nothing
    commit = ", ".join(commits_of(meta)) or meta.get("git_commit")
    driver = ", ".join(f"{k}={v}" for k, v in th.items() if v is not None)
    cell_env = meta.get("cell_env")
    # the cells of a study with its own worker environment (the timing studies: 1 BLAS thread) ran with that, not
    # with the thread setting of the process that drove the run
    threads = ([("threads of the cells", ", ".join(f"{k}={v}" for k, v in sorted(cell_env.items())) +
                 " (the environment of the worker processes that measured them)"),
                ("threads of the driver", driver)] if isinstance(cell_env, dict) and cell_env
               else [("threads", driver)])
    rows = [("mode", "quick" if meta.get("quick") else "full"), ("diffsuite", meta.get("diffsuite")),
            ("git commit", commit), ("python", meta.get("python")), ("libraries", libs),
            ("CPU", meta.get("cpu")), ("GPU", meta.get("gpu") or f"none ({meta.get('gpu_reason', '')})"),
            *threads, ("devices", meta.get("device"))]
    runs = measuring_runs(meta)
    for i, r in enumerate(runs, 1):
        ex, cells = r.get("executor") or {}, r.get("cells")
        when = str(r["started"]) if r.get("started") else "date not recorded"  # ISO 8601, UTC offset included
        rows.append((f"run {i}", f"{when}, commit {r.get('git_commit')}, "
                                 f"{ex.get('kind', '?')}, {cells if cells is not None else '?'} cells"
                                 + (f", command: {shown_command(r['command'])}" if r.get("command") else "")))
    if not runs:
        rows.append(("measured", "before run history was recorded: the date of the measurement is not stored"
                     + ("" if meta.get("command") else ", nor the command")))
        if meta.get("command"):
            rows.append(("command", shown_command(meta["command"])))
    for k, v in (meta.get("skipped") or {}).items():
        rows.append((f"skipped {k}", v))
    return pd.DataFrame(rows, columns=["", "value"])


def shown_command(command: Any) -> str:
    """A stored command line as the report shows it: an absolute path (this machine's: a script's, an ``--out``
    folder's) by its last part, ``.../reports``, so that a committed report names no machine's folders."""
    import shlex
    try:
        tokens = shlex.split(str(command))
    except ValueError:
        return str(command)

    def short(t: str) -> str:
        key, eq, value = t.partition("=") if t.startswith("-") else ("", "", t)
        return f"{key}{eq}.../{Path(value).name}" if os.path.isabs(value) and Path(value).name else t

    return shlex.join(short(t) for t in tokens)


# ----- html -----
def _inline_html(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return t


def _html_table(df: pd.DataFrame, caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    def td(v) -> str:  # numbers never wrap (1.95e-04 split over two lines); long text (a message) does
        text = _cell(v)
        return f"<td class=text>{html.escape(text)}</td>" if len(text) > 40 else f"<td>{html.escape(text)}</td>"

    body = "".join("<tr>" + "".join(td(v) for v in row) + "</tr>" for row in df.itertuples(index=False))
    cap = f"<caption>{_inline_html(caption)}</caption>" if caption else ""
    # a table wider than the page scrolls sideways inside its own box instead of widening the page
    return f"<div class=scroll><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def to_html_section(rep: Report, study: str, meta: dict | None = None) -> str:
    out = [f'<section id="{study}"><h2>{html.escape(rep.title)}</h2>',
           f"<p class=question>{_inline_html(rep.question)}</p>",
           f'<p class=links>Data: <a href="{study}/results.csv">results.csv</a> · '
           f'<a href="{study}/meta.json">meta.json</a> · <a href="{study}/report.md">report.md</a></p>']
    for b in rep.blocks:
        if isinstance(b, Heading):
            out.append(f"<h3>{_inline_html(b.text)}</h3>")
        elif isinstance(b, Para):
            out.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            out.append(_html_table(b.df, b.caption))
        elif isinstance(b, Figure):
            out.append(f'<figure><img src="{study}/{b.file}" alt="{html.escape(b.caption)}">'
                       f"<figcaption>{_inline_html(b.caption)}</figcaption></figure>")
    if meta:
        out.append("<details><summary>Machine and versions</summary>" + _html_table(_meta_table(meta)) + "</details>")
    out.append("</section>")
    return "\n".join(out)


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;margin:1em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3}caption{font-weight:bold;text-align:left}
code{background:#f4f4f4;padding:0 3px}.question{font-style:italic}nav a{margin-right:1em}figure{margin:1em 0}
figcaption{font-size:.85em;color:#555}.scroll{max-width:100%;overflow-x:auto}
td.text{white-space:normal;min-width:24em;text-align:left}"""


# ----- writing -----
def load(study: str, out: Path) -> tuple[pd.DataFrame, dict]:
    """A study's stored rows and metadata (no measuring)."""
    directory = Path(out) / study
    try:
        table = ResultStore(directory).table()
    except OSError as e:  # reading, not writing: not the CLI's "cannot write ...; give --out a folder" message
        raise StudyError(f"cannot read the stored results {e.filename or directory / RESULTS}: "
                         f"{e.strerror or e}") from None
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return table, meta if isinstance(meta, dict) else {}


def check_study_folder(study: str, out: Path, meta: dict) -> None:
    """A StudyError when ``out/study`` holds another study's results (its meta.json names that study): drawing
    study ``study``'s report from them fails deep in its code (a column it needs is not there)."""
    named = meta.get("study")
    if named is not None and named != study:
        directory = Path(out) / study
        raise StudyError(f"{directory} holds results of study {named!r} (its meta.json says so), not of study "
                         f"{study!r}; each study's results go in the folder named after it: move them to "
                         f"{Path(out) / str(named)}, or measure {study} there with `diffsuite run {study} --out {out}` "
                         "(which moves them aside)")


def build(study: str, out: Path) -> Report:
    """The study's report from its stored rows. Rows not run for a missing package are not measurements: the
    study's ``report`` never sees them, and a closing "Not run on this machine" section names each, with the
    command that installs what it needs. Every other row that did not finish (``budget``, ``refused``, ``error``)
    and that the study's own report does not list (``unlisted_failures``) goes into a closing "Cells that did not
    finish" table, so that no failed cell is dropped silently."""
    table, meta = load(study, out)
    check_study_folder(study, out, meta)
    module = study_module(study)
    if table.empty:
        return Report(title=module.TITLE, question=module.QUESTION,
                      blocks=[Para("No results stored yet: run `diffsuite run " + study + "`.")])
    unavailable = table["status"] == UNAVAILABLE if "status" in table else pd.Series(False, index=table.index)
    measured = table[~unavailable].reset_index(drop=True)
    ok = measured["status"] == "ok" if "status" in measured else pd.Series(True, index=measured.index)
    if measured.empty:
        rep = Report(title=module.TITLE, question=module.QUESTION, blocks=[])
    elif not ok.any():  # every cell failed: the messages are the report (the study's figures need measurements)
        rep = failures_report(module, measured, "No cell of this study produced a measurement")
    else:
        try:
            rep = module.report(measured, meta, Path(out) / study)
        except (KeyError, ValueError, TypeError, IndexError) as e:
            if ok.all():
                raise  # a bug in the study's report, not rows it was not written for
            rep = failures_report(module, measured, f"The report could not be drawn from these rows "
                                                    f"({type(e).__name__}: {e})")
        else:
            unlisted = unlisted_failures(module, measured)
            if len(unlisted):
                rep.blocks += unfinished_section(unlisted)
                rep.findings["unlisted_failed_rows"] = len(unlisted)
    commits = commits_of(meta)
    if len(commits) > 1:  # a resumed result set measured by several source trees: say so before anything else
        rep.blocks.insert(0, Para(f"**Warning:** these results were measured by {len(measuring_runs(meta))} runs "
                                  f"from {len(commits)} different commits ({', '.join(f'`{c}`' for c in commits)}); "
                                  "rows measured by different code are mixed (meta.json, `runs`, lists each run)."))
        rep.findings["run_commits"] = commits
    if unavailable.any():
        rep.blocks.append(not_run_section(table[unavailable]))
        rep.findings["not_run"] = sorted(set(table.loc[unavailable, "needs"].dropna().astype(str)))
    return rep


def failures_report(module, rows: pd.DataFrame, why: str) -> Report:
    """A study's report when its rows hold no measurement to draw: each distinct failure message, with its
    status and how many rows gave it, and what to do."""
    status = rows["status"].fillna("error").astype(str) if "status" in rows else pd.Series("error", index=rows.index)
    message = rows["message"].fillna("").astype(str) if "message" in rows else pd.Series("", index=rows.index)
    counts = (pd.DataFrame({"status": status, "message": message}).groupby(["status", "message"], sort=True)
              .size().reset_index(name="rows"))
    n_bad = int((status != "ok").sum())
    return Report(module.TITLE, module.QUESTION, [
        Heading("No results to show"),
        Para(f"{why}: {n_bad} of {len(rows)} rows failed. The messages below say why; fix the configuration "
             "or the environment and rerun (cells stored with status error are measured again)."),
        Table(counts, "Failures by message")], {"failed_rows": n_bad})


def unlisted_failures(module, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that did not finish (a status other than ``ok``) and that the study's own report does not list.
    A study whose report lists some says which with ``shown_failures(table)``: a boolean Series over ``table``'s
    rows (e.g. every non-ok row, when its report has a table of them); without it, none is listed."""
    status = rows["status"] if "status" in rows else pd.Series("ok", index=rows.index)
    bad = status.fillna("error").astype(str) != "ok"
    hook = getattr(module, "shown_failures", None)
    if hook is not None and bad.any():
        bad &= ~hook(rows).reindex(rows.index, fill_value=False).fillna(False).astype(bool)
    return rows[bad]


def cell_params(cell_id: Any) -> dict:
    """A cell's parameters read back from its id (``problem=mlp|method=finite_diff[central]``), as text; an id that
    is not of that form (a hand-edited row) is ``{"cell": id}``."""
    text = "" if cell_id is None or (isinstance(cell_id, float) and math.isnan(cell_id)) else str(cell_id)
    parts = [p.split("=", 1) for p in text.split("|")] if text else []
    if not parts or any(len(p) != 2 or not p[0] for p in parts):
        return {"cell": text}
    return dict(parts)


def failures_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that did not finish, one line per cell, status and message: the cell's parameters (from its id, so a
    row that lacks its parameter columns is listed too), status, message and how many rows gave it."""
    cells = rows["cell"] if "cell" in rows else pd.Series("", index=rows.index)
    params = [cell_params(c) for c in cells]
    keys = list(dict.fromkeys(k for p in params for k in p)) or ["cell"]
    df = pd.DataFrame({k: [p.get(k, "") for p in params] for k in keys}, index=rows.index)
    df["status"] = rows["status"].fillna("error").astype(str) if "status" in rows else "error"
    df["message"] = rows["message"].fillna("").astype(str) if "message" in rows else ""
    return (df.groupby(keys + ["status", "message"], sort=False).size().reset_index(name="rows")
            .sort_values(keys + ["status", "message"], kind="stable").reset_index(drop=True))


UNFINISHED_LIMIT = 60  # lines of the "Cells that did not finish" table; the rest are counted, not listed


def unfinished_section(rows: pd.DataFrame) -> list:
    """The closing "Cells that did not finish" blocks for ``rows`` (see ``failures_table``)."""
    t = failures_table(rows)
    cells = t.drop(columns=["status", "message", "rows"]).drop_duplicates()
    statuses = list(dict.fromkeys(t["status"]))
    meaning = "; ".join(f"{st}: {MEANING.get(st, 'a status this version does not know')}" for st in statuses)
    one = len(rows) == 1
    text = (f"{len(rows)} row{'' if one else 's'} of {len(cells)} cell{'s' if len(cells) != 1 else ''} did not "
            f"finish; {'it is' if one else 'they are'} in none of the figures and tables above ({meaning}).")
    if "cell_failed" in rows and rows["cell_failed"].fillna(False).astype(bool).any():
        text += " A cell whose measurement raised (`cell_failed`) is measured again by the next run."
    if len(t) > UNFINISHED_LIMIT:
        text += (f" The first {UNFINISHED_LIMIT} of {len(t)} lines are below; `results.csv` holds every row "
                 "(column `status`).")
    return [Heading("Cells that did not finish"), Para(text),
            Table(t.head(UNFINISHED_LIMIT), "Cells that did not finish, by status and message")]


def not_run_section(rows: pd.DataFrame) -> Bullets:
    """One bullet per missing package: what was not run (the methods, or the number of cells) and how to
    install it."""
    items = []
    needs = rows["needs"].fillna("?").astype(str) if "needs" in rows else pd.Series("?", index=rows.index)
    for package, g in rows.groupby(needs, sort=True):
        what = (", ".join(f"`{m}`" for m in sorted(set(g["method"].dropna().astype(str))))
                if "method" in g and g["method"].notna().any() else f"{len(g)} cells")
        items.append(f"Not run on this machine: {what} ({len(g)} row{'s' if len(g) > 1 else ''}): needs {package}, "
                     f"`{install_hint(package)}`; "
                     "a rerun of this study measures them once it is installed.")
    return Bullets(items)


def write_study_report(study: str, out: Path) -> Report:
    """Figures, ``report.md`` and ``findings.json`` of one study, from its stored rows."""
    directory = Path(out) / study
    rep = build(study, out)
    _, meta = load(study, out)
    write_atomic_text(directory / "report.md", to_markdown(rep, meta))
    write_atomic_text(directory / "findings.json", dumps(rep.findings) + "\n")
    write_atomic_text(directory / SECTION, to_html_section(rep, study, meta) + "\n")
    return rep


def studies_present(out: Path) -> list[str]:
    return [s for s in STUDIES if (Path(out) / s / RESULTS).exists()]


def write_index(out: Path) -> Path:
    """``out/index.html``: every study with stored results, its figures, tables and findings.

    Each study's section is the ``section.html`` its last report wrote; a study whose report is not
    written yet (another process may be measuring it) is left out until the next index."""
    out = Path(out)
    present = studies_present(out)
    sections, nav = [], []
    for s in present:
        if not (out / s / SECTION).exists():
            continue
        nav.append(f'<a href="#{s}">{html.escape(study_module(s).TITLE)}</a>')
        sections.append((out / s / SECTION).read_text().rstrip("\n"))
    body = "\n".join(sections) if sections else "<p>No study results yet: run <code>diffsuite run</code>.</p>"
    page = (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>diffsuite studies</title>"
            f"<style>{CSS}</style></head><body>\n<h1>diffsuite: symbolic, finite differences and reverse mode, "
            f"measured</h1>\n<p>Each section below is generated from the stored results by "
            f"<code>diffsuite report</code>; every number in the text is computed from the data.</p>\n"
            f"<nav>{''.join(nav)}</nav>\n{body}\n</body></html>\n")
    return write_atomic_text(out / INDEX, page)


DEBUG = "DIFFSUITE_DEBUG"  # set (to anything but "" or 0): a report that cannot be drawn raises with its traceback


class ReportsFailed(StudyError):
    """``rebuild`` drew some studies' reports and not others': ``rebuilt`` and ``failures`` (one line each)."""

    def __init__(self, rebuilt: list[str], failures: list[str]):
        self.rebuilt, self.failures = rebuilt, failures
        super().__init__("; ".join(failures))


def debugging() -> bool:
    return os.environ.get(DEBUG, "").strip() not in ("", "0")


def rebuild(out: Path | str = "reports", studies: list[str] | None = None) -> list[str]:
    """Rebuild figures, reports and the index from stored results; returns the studies rebuilt.

    A study whose report cannot be drawn from its stored results (another study's results in its folder, results
    of an older diffsuite that lack a column) does not stop the others: each is one line of a ``ReportsFailed``
    raised after the index is written, naming the folder and what to do. With ``DIFFSUITE_DEBUG=1`` in the
    environment the first such error is raised as it is instead, with its traceback (a bug in a report's code
    looks the same from here). An OSError (a folder that cannot be written) is raised as it is."""
    out = Path(out)
    names = studies or studies_present(out)
    rebuilt, failures = [], []
    for s in names:
        try:
            write_study_report(s, out)
        except OSError:
            raise
        except StudyError as e:
            if debugging():
                raise
            failures.append(str(e))
        except Exception as e:  # noqa: BLE001 - one line naming the folder; DIFFSUITE_DEBUG=1 shows the traceback
            if debugging():
                raise
            failures.append(report_failure(s, out, e))
        else:
            rebuilt.append(s)
    write_index(out)
    if failures:
        raise ReportsFailed(rebuilt, failures)
    return names


def report_failure(study: str, out: Path, e: BaseException) -> str:
    """One line for a report that could not be drawn from ``out/study``'s results: the folder, the error, the
    diffsuite version that measured them, and what to do."""
    _, meta = load(study, out)
    by = f"measured by diffsuite {meta['diffsuite']}" if meta.get("diffsuite") else "no meta.json says by what"
    return (f"cannot draw the report of study {study} from the results in {Path(out) / study} ({by}): "
            f"{type(e).__name__}: {e}; results from another diffsuite version may lack what this one reads: measure "
            f"them again with `diffsuite run {study} --out {out}`. Set {DEBUG}=1 for the traceback (with this "
            "version's own results it is a bug: please report it)")
