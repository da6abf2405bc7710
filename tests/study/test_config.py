"""Study configurations from TOML: the shipped files are the code's grids, bad keys and values are clear
errors, a file's grid hashes like the same grid built by hand (so resuming works as before)."""
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from diffsuite.cli import main
from diffsuite.errors import StudyError
from diffsuite.study import config as sc
from diffsuite.study import metadata
from diffsuite.study.studies import STUDIES, study_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("study", list(STUDIES))
@pytest.mark.parametrize("grid", sc.GRIDS)
def test_shipped_files_are_the_studies_grids(study, grid):
    module = study_module(study)
    path = sc.shipped_path(study, grid)
    assert path.exists(), f"{path.name} missing: write it with diffsuite.study.config.write_shipped(['{study}'])"
    expected = module.Config() if grid == "full" else module.Config().quick()
    assert sc.load(study, module, path=path) == expected, (
        f"{path.name} differs from the code's grid: regenerate it with write_shipped(['{study}'])")
    assert sc.load(study, module, quick=grid == "quick") == expected  # what --quick and a plain run measure


def test_shipped_files_are_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["diffsuite.study"]
    assert "configs/*.toml" in globs


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_a_partial_file_overrides_its_base_grid(tmp_path):
    module = study_module("accuracy")
    path = _write(tmp_path, 'study = "accuracy"\nbase = "quick"\nseeds = [0, 1, 2]\nhidden = [4, 4]\nsymbolic = false\n')
    got = sc.load("accuracy", module, path=path)
    by_hand = replace(module.Config().quick(), seeds=(0, 1, 2), hidden=(4, 4), symbolic=False)
    assert got == by_hand
    assert metadata.config_hash(got) == metadata.config_hash(by_hand)  # resume keys on the grid, not the file
    assert sc.load("accuracy", module, path=_write(tmp_path, 'study = "accuracy"\n')) == module.Config()


def test_a_float_field_takes_an_integer(tmp_path):
    module = study_module("speed")
    got = sc.load("speed", module, path=_write(tmp_path, 'study = "speed"\nbudget_s = 5\n'))
    assert got.budget_s == 5.0 and isinstance(got.budget_s, float)


@pytest.mark.parametrize("text,needles", [
    ('study = "accuracy"\nactivation = ["tanh"]\n',
     ["unknown key 'activation' for study accuracy", "the valid keys are study, base, activations, losses"]),
    ('study = "accuracy"\ndevices = ["cpu"]\n', ["unknown key 'devices'", "--device sets devices"]),
    ('study = "accuracy"\nseeds = 3\n', ["seeds must be a list", "got 3"]),
    ('study = "accuracy"\nseeds = [0, "one"]\n', ["seeds[1] must be a whole number", "got 'one'"]),
    ('study = "accuracy"\nbatch = 2.5\n', ["batch must be a whole number; got 2.5"]),
    ('study = "accuracy"\nsymbolic = "yes"\n', ["symbolic must be true or false"]),
    ('base = "quick"\n', ["the key 'study' is missing", 'study = "accuracy"']),
    ('study = "speed"\n', ["configures study 'speed', not 'accuracy'"]),
    ('study = "accuracy"\nbase = "tiny"\n', ['base must be "quick" or "full"', "'tiny'"]),
    ('study = "accuracy"\nseeds = [0,\n', ["is not valid TOML"]),
])
def test_bad_configuration_is_a_clear_error(tmp_path, text, needles):
    path = _write(tmp_path, text)
    with pytest.raises(StudyError) as e:
        sc.load("accuracy", study_module("accuracy"), path=path)
    for needle in needles:
        assert needle in str(e.value)
    assert str(path) in str(e.value)


def test_cli_bad_key_exits_2_naming_it(tmp_path, capsys):
    path = _write(tmp_path, 'study = "rounding_error"\nschemez = ["central"]\n')
    assert main(["run", "rounding_error", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'schemez'" in err and "schemes" in err
    assert not (tmp_path / "out" / "rounding_error" / "results.jsonl").exists()  # nothing measured


def test_cli_config_needs_one_study_and_no_quick(tmp_path, capsys):
    path = _write(tmp_path, 'study = "accuracy"\n')
    assert main(["run", "--config", str(path), "--out", str(tmp_path)]) == 2
    assert "configures one study" in capsys.readouterr().err
    assert main(["run", "accuracy", "--quick", "--config", str(path), "--out", str(tmp_path)]) == 2
    assert "drop --quick" in capsys.readouterr().err


def test_list_config_prints_both_shipped_files(capsys):
    assert main(["list", "--config", "rounding_error"]) == 0
    out = capsys.readouterr().out
    parts = out.split("# ---- ")[1:]
    assert [p.split(" ----")[0] for p in parts] == ["rounding_error.quick.toml", "rounding_error.full.toml"]
    quick = tomllib.loads(parts[0].split("\n", 1)[1])
    assert quick["study"] == "rounding_error" and quick["per_decade"] == 1  # Config().quick()'s value, by hand
    assert main(["list", "--config", "nope"]) == 2
