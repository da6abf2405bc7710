"""Study configurations' values are checked like their keys (before any folder exists), a quick base counts as
--quick, a study whose cells all failed still gets a report, and the messages and docs a new user meets say
what happened."""
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from diffsuite.cli import main
from diffsuite.errors import StudyError
from diffsuite.study import config as sc
from diffsuite.study.store import ResultStore
from diffsuite.study.studies import STUDIES, study_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("study, text, needles", [
    ("accuracy", 'activations = ["tanhh"]', ["activations: unknown 'tanhh'", "the valid values are", "tanh"]),
    ("accuracy", "batch = -2", ["batch must be a whole number >= 1; got -2"]),
    ("accuracy", 'losses = ["cross_entropyy"]', ["losses: unknown", "quadratic, binary_cross_entropy"]),
    ("accuracy", "hidden = [0]", ["hidden[0] must be a whole number >= 1"]),
    ("accuracy", 'dtypes = ["float16"]', ["dtypes: unknown 'float16'", "float64, float32"]),
    ("agreement", 'methods = ["nosuch"]', ["methods: unknown 'nosuch'", "reverse[numpy]"]),
    ("agreement", "problems = -5", ["problems must be a whole number >= 1; got -5"]),
    ("agreement", "kink_share = 7", ["kink_share must be a number in [0, 1]; got 7.0"]),
    ("agreement", "log10_scale = [1.0, -1.0]", ["log10_scale is [low, high] with high >= low; got [1.0, -1.0]"]),
    # a repeated grid value was measured and counted twice (agreement's methods), or crashed as two cells with one id
    ("agreement", 'methods = ["reverse[numpy]", "reverse[numpy]"]', ['methods lists "reverse[numpy]" twice']),
    ("accuracy", 'activations = ["tanh", "tanh"]', ['activations lists "tanh" twice', "remove the repeat"]),
    ("speed", "widths = [2, 2]", ["widths lists 2 twice"]),
    ("expression_growth", 'engines = ["sympy", "sympy"]', ['engines lists "sympy" twice']),
    ("rounding_error", 'problems = ["scalar", "scalar"]', ['problems lists "scalar" twice']),
    ("training", 'methods = [["reverse[numpy]", "float64"], ["reverse[numpy]", "float64"]]',
     ['methods lists ["reverse[numpy]", "float64"] twice']),
    ("rounding_error", 'schemes = ["centrl"]', ["schemes: unknown 'centrl'", "central, five_point"]),
    ("rounding_error", 'problems = ["mlp2"]', ["problems: unknown 'mlp2'", "scalar, mlp"]),
    ("rounding_error", "per_decade = 0", ["per_decade must be a whole number from 1 to 1000"]),
    ("speed", "widths = [0]", ["widths[0] must be a whole number >= 1; got 0"]),
    ("speed", "widths = []", ["widths is empty"]),
    ("speed", 'methods = ["reverse[jax]"]', ["methods: unknown 'reverse[jax]'", "reverse[torch-cpu]",
                                             "--device all or cuda adds reverse[torch-cuda]"]),
    ("speed", "budget_s = 0", ["budget_s must be a number in (0, inf); got 0.0"]),
    ("expression_growth", "depths = [0, -1]", ["depths[0] must be a whole number >= 1; got 0"]),
    ("expression_growth", 'engines = ["maple"]', ["engines: unknown 'maple'", "symengine, sympy"]),
    ("expression_growth", 'activation = "sigmoidd"', ["activation: unknown 'sigmoidd'"]),
    ("training", 'problems = ["mnist"]', ["problems: unknown 'mnist'", "digits, moons"]),
    ("training", 'methods = [["symbolic[cse]", "float32"]]', ["methods[0][1] (dtype): unknown 'float32'"]),
    ("training", "momentum = 1.5", ["momentum must be a number in [0, 1)"]),
    ("second_order", 'cases = [["tanh", "mse"]]', ["cases[0][1] (loss): unknown 'mse'", "quadratic"]),
    ("second_order", "accuracy_layers = [3]", ["accuracy_layers needs at least two widths"]),
    ("second_order", 'cost_methods = ["forward[fwd-bwd]"]', ["cost_methods: unknown 'forward[fwd-bwd]'"]),
])
def test_bad_values_are_clear_errors_listing_what_is_allowed(tmp_path, study, text, needles):
    path = tmp_path / "grid.toml"
    path.write_text(f'study = "{study}"\n{text}\n')
    with pytest.raises(StudyError) as e:
        sc.load(study, study_module(study), path=path)
    for needle in needles:
        assert needle in str(e.value), str(e.value)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("study", list(STUDIES))
def test_the_shipped_grids_pass_their_own_checks(study):
    module = study_module(study)
    for grid in sc.GRIDS:
        module.validate(sc.base_config(module, grid))


@pytest.mark.parametrize("name, text", [
    ("bad_value.toml", 'study = "accuracy"\nactivations = ["tanhh"]\n'),
    ("bad_key.toml", 'study = "accuracy"\nactivation = ["tanh"]\n'),
    ("wrong_study.toml", 'study = "speed"\n'),
    ("malformed.toml", 'study = "accuracy"\nseeds = [0,\n'),
    ("missing.toml", None),
])
def test_a_rejected_run_creates_no_folder(tmp_path, capsys, name, text):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", "accuracy", "--config", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffsuite run: error: ") and "Traceback" not in err
    assert not out.exists()


def test_a_device_that_is_missing_creates_no_folder(tmp_path, capsys):
    from diffsuite.study import metadata
    if metadata.gpu_info()["cuda_available"]:
        pytest.skip("this machine has a GPU: --device cuda is accepted")
    assert main(["run", "rounding_error", "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    assert "--device cuda needs a CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


TINY = '''
from dataclasses import dataclass
from diffsuite.study.report import Para, Report
from diffsuite.study.runner import cell
TITLE, QUESTION = "Tiny", "Is a quick base reported as quick?"

@dataclass(frozen=True)
class Config:
    n: int = 3
    def quick(self):
        return Config(n=2)

def cells(config):
    return [cell(i=i) for i in range(config.n)]

def measure(config, params):
    if params["i"] == 1 and FAIL:
        raise FAIL
    return [{"x": params["i"]}]

def report(table, meta, out_dir):
    return Report(TITLE, QUESTION, [Para(f"{len(table)} rows")])

FAIL = None
'''


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    from diffsuite.study import runner
    (tmp_path / "tiny_values_study.py").write_text(TINY)
    (tmp_path / "tiny_values_study2.py").write_text(TINY.replace("FAIL = None", "FAIL = KeyboardInterrupt"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(runner.STUDIES, "tiny", "tiny_values_study")
    monkeypatch.setitem(runner.STUDIES, "tiny2", "tiny_values_study2")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_quick_base_is_run_reported_and_stored_as_quick(tiny, capsys):
    (tiny / "q.toml").write_text('study = "tiny"\nbase = "quick"\n')
    assert main(["run", "tiny", "--config", "q.toml", "--no-progress"]) == 0
    out = capsys.readouterr().out
    folder = tiny / "reports" / "quick" / "tiny"  # the quick folder, as with --quick: never reports/
    assert json.loads((folder / "meta.json").read_text())["quick"] is True
    assert "| mode | quick |" in (folder / "report.md").read_text()
    assert "tiny: 2 cells" in out and f"index: {Path('reports') / 'quick' / 'index.html'}" in out
    assert not (tiny / "reports" / "tiny").exists()
    (tiny / "f.toml").write_text('study = "tiny"\n')  # a full base: reports/, mode full
    assert main(["run", "tiny", "--config", "f.toml", "--no-progress"]) == 0
    assert "| mode | full |" in (tiny / "reports" / "tiny" / "report.md").read_text()


def test_an_interrupted_run_keeps_the_reports_of_the_studies_it_finished(tiny, capsys):
    assert main(["run", "tiny", "tiny2", "--out", "out", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "diffsuite run: interrupted; the cells measured so far are stored" in err
    assert (tiny / "out" / "tiny" / "report.md").exists() and (tiny / "out" / "index.html").exists()
    assert not (tiny / "out" / "tiny2" / "report.md").exists()


@pytest.mark.parametrize("study", list(STUDIES))
def test_a_study_whose_cells_all_failed_still_gets_a_report_with_the_messages(tmp_path, capsys, study):
    module = study_module(study)
    grid = module.cells(sc.base_config(module, "quick"))[:2]
    with ResultStore(tmp_path / study) as store:
        for c in grid:
            store.append(c.id, [{**c.params, "status": "error", "message": "ValueError: boom (at x.py:1)",
                                 "cell_failed": True, "cell_s": 0.0}])
        store.write_table()
    assert main(["report", "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    text = (tmp_path / study / "report.md").read_text()
    assert "No results to show" in text and "ValueError: boom (at x.py:1)" in text
    assert re.search(r"\| error \| ValueError: boom \(at x\.py:1\) \| 2 \|", text)


def test_a_worker_that_dies_while_starting_names_the_missing_main_guard(tmp_path):
    """A script without `if __name__ == "__main__":` starts the study again in every spawned worker; the error
    says so instead of blaming memory. A worker killed after starting still gets the memory message."""
    script = textwrap.dedent('''
        import os, sys
        from diffsuite.study.executors import LocalPool

        class Cell:
            params = {}

        def die(module_name, config, params):
            os._exit(3)  # a worker killed while measuring (the OOM killer, say)

        if __name__ == "__main__" or sys.argv[1] == "unguarded":  # unguarded: the worker's import runs it too
            try:
                with LocalPool(1, label="demo") as pool:
                    pool.run(die, "m", None, iter([Cell()]), lambda c, rows: None)
            except RuntimeError as e:
                if __name__ != "__main__":
                    raise  # in the worker: multiprocessing refuses to start a process while bootstrapping
                print(e)
    ''')
    path = tmp_path / "script.py"
    path.write_text(script)
    env = {"PYTHONPATH": str(ROOT)}

    def run(mode):
        out = subprocess.run([sys.executable, str(path), mode], capture_output=True, text=True, timeout=120,
                             cwd=tmp_path, env={**__import__("os").environ, **env})
        return out.stdout
    unguarded = run("unguarded")
    assert "died while starting" in unguarded and 'if __name__ == "__main__":' in unguarded, unguarded
    assert "out of memory" not in unguarded
    guarded = run("guarded")
    assert "died (out of memory, or killed)" in guarded and "if __name__" not in guarded, guarded


def test_the_docs_python_snippet_is_guarded_and_writes_to_the_quick_folder():
    text = (ROOT / "docs" / "studies.md").read_text()
    block = text.split("From Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert 'if __name__ == "__main__":' in block
    calls = [line for line in block.splitlines() if re.search(r"\b(run_all|run_study|rebuild)\(", line)]
    assert len(calls) == 3 and all(line.startswith("    ") for line in calls)  # all under the guard
    assert all("reports/quick" in line for line in calls), calls  # never the committed full results
    assert "re-import" in text.split("From Python", 1)[1].split("## The studies")[0]  # and it says why


def test_the_accuracy_reference_is_described_as_docs_reference_md_does():
    pytest.importorskip("flint")
    from diffsuite.study.common import mlp_problem, reference
    p = mlp_problem(hidden=(2,), activation="tanh", loss="quadratic", batch=2, seed=0)
    name = reference(p.objective, p.theta).name
    assert name == "diffsuite.reference (certified: arb ball arithmetic, every entry to 50 proven digits)"
    assert "every entry to 50 proven digits" in (ROOT / "docs" / "reference.md").read_text()
