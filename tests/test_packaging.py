"""Packaging a new user meets first: the license as an SPDX string (no setuptools deprecation warnings), one
installed command (``diffsuite``, also ``python -m diffsuite``) that runs every study, and ``make demo`` installing
what its report needs except torch, which the report names instead."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_the_license_is_an_spdx_string_and_setuptools_reads_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # a table ({text = ...}) is deprecated: three warnings per install
    requires = project["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r) and int(r.split(">=")[1]) >= 77 for r in requires)


def test_one_command_runs_every_study():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"diffsuite": "diffsuite.cli:main"}
    out = subprocess.run([sys.executable, "-m", "diffsuite", "run", "--help"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0
    for study in ("expression_growth", "rounding_error", "accuracy", "speed"):
        assert study in out.stdout
    readme = (ROOT / "README.md").read_text()
    assert "diffsuite run STUDY" in readme and "not installed" in readme  # the scripts are checkout conveniences


def test_make_demo_installs_symengine_and_names_what_it_skips():
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo: (.+)$", makefile, re.M).group(1).split()
    recipe = re.search(rf"^{re.escape(demo[0])}:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "symengine" in recipe and "torch" not in recipe


def test_the_license_text_ships_and_the_torch_extra_pins_the_tested_version():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    makefile = (ROOT / "Makefile").read_text()
    tested = re.search(r"TORCH_VERSION := (\S+)", makefile).group(1)
    assert project["project"]["optional-dependencies"]["torch"] == [f"torch=={tested}"]


def test_the_source_distribution_carries_what_the_tests_need():
    """MANIFEST.in: every test helper and subfolder, the committed baselines (tests/test_check_cli.py reads them)."""
    manifest = (ROOT / "MANIFEST.in").read_text()
    for rule in ("recursive-include tests *.py", "recursive-include baselines *.json", "include README.md LICENSE"):
        assert rule in manifest


def test_importing_diffsuite_loads_nothing_heavy():
    """The pytest plugin is loaded in every pytest session where diffsuite is installed: `import diffsuite` must not
    pull in numpy's friends (the differentiators, SymPy, pandas); each name loads on first use."""
    code = ("import sys, diffsuite.pytest_plugin, diffsuite as ds; "
            "heavy = [m for m in ('sympy', 'pandas', 'matplotlib', 'diffsuite.differentiators') if m in sys.modules]; "
            "assert not heavy, heavy; ds.MLP, ds.nn.ELU, ds.get_differentiator")  # (and every name still loads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
