"""The agreement study: reproducible random problems (some exactly on kinks), rows against the reference,
disagreements listed with the problem that reproduces them, crashes counted."""
import json

import numpy as np
import pandas as pd
import pytest

import diffsuite as ds
from diffsuite.errors import StudyError
from diffsuite.study import runner
from diffsuite.study.studies import agreement as ag

N_SCAN = 200  # the quick run's problems


def test_problems_are_reproducible_and_distinct():
    a, b, c = ag.problem(0, 7), ag.problem(0, 7), ag.problem(0, 8)
    assert np.array_equal(a.theta, b.theta) and np.array_equal(a.objective.inputs, b.objective.inputs)
    assert a.description == b.description
    assert a.theta.shape != c.theta.shape or not np.array_equal(a.theta, c.theta)
    assert not np.array_equal(ag.problem(1, 7).objective.inputs, a.objective.inputs) or \
        ag.problem(1, 7).description != a.description  # the seed matters too


def test_the_quick_problems_cover_every_choice():
    descs = [ag.problem(0, i).description for i in range(N_SCAN)]
    seen = {k: {d[k] for d in descs} for k in ("activation", "loss", "reg")}
    assert seen == {"activation": set(ag.ACTIVATIONS), "loss": set(ag.LOSSES), "reg": set(ag.REGS)}
    scales = [d["scale"] for d in descs]
    assert 0.1 <= min(scales) and max(scales) <= 10.0
    assert 10 <= sum(d["on_kink"] for d in descs) <= N_SCAN // 2


def test_kink_problems_sit_exactly_on_the_kink():
    checked = set()
    for i in range(N_SCAN):
        p = ag.problem(0, i)
        if not p.description["on_kink"]:
            continue
        model, theta = p.objective.model, p.theta
        if "(0)" in p.description["kinks"]:  # first-layer pre-activations of sample 0, by hand
            (a, b, shape), (c, d, _) = model.layout["W0"], model.layout["b0"]
            pre = p.objective.inputs[0] @ theta[a:b].reshape(shape) + theta[c:d]
            assert np.all(pre == 0.0), (i, pre)
            checked.add("activation")
        if "L1" in p.description["kinks"]:
            weights = np.concatenate([theta[a:b] for n, (a, b, _) in model.layout.items() if n.startswith("W")])
            assert np.any(weights == 0.0) and p.objective.l1 > 0
            checked.add("l1")
    assert checked == {"activation", "l1"}


def _first(predicate) -> int:
    return next(i for i in range(N_SCAN) if predicate(ag.problem(0, i).description))


def test_rows_measure_each_method_against_the_reference():
    torch = pytest.importorskip("torch")
    i = _first(lambda d: d["activation"] == "tanh" and d["loss"] == "quadratic" and d["reg"] == "none")
    config = ag.Config(methods=("reverse[numpy]", "finite_diff[central]"))
    rows = {r["method"]: r for r in ag.measure(config, {"problem": i})}
    assert set(rows) == {"reverse[numpy]", "finite_diff[central]"}
    # the oracle: torch autograd in float64 on the same objective, written out here
    p = ag.problem(0, i)
    model, obj = p.objective.model, p.objective
    t = torch.tensor(p.theta, dtype=torch.float64, requires_grad=True)
    h = torch.tensor(obj.inputs, dtype=torch.float64)
    for k in range(len(model.layers) - 1):
        (a, b, shape), (c, d, _) = model.layout[f"W{k}"], model.layout[f"b{k}"]
        h = h @ t[a:b].reshape(shape) + t[c:d]
        if k < len(model.layers) - 2:
            h = torch.tanh(h)
    y = torch.tensor(np.asarray(obj.targets, dtype=np.float64))
    loss = 0.5 * ((h - y) ** 2).sum() / h.shape[0]  # the quadratic loss: 1/2 sum over outputs, batch mean
    ref = ds.reference_gradient(obj, p.theta).grad
    loss.backward()
    assert np.max(np.abs(t.grad.numpy() - ref)) / np.max(np.abs(ref)) < 1e-12  # the reference is right here
    assert rows["reverse[numpy]"]["error"] < 1e-12 and rows["reverse[numpy]"]["beyond"] is False
    assert 0 < rows["finite_diff[central]"]["error"] < 1e-5
    assert rows["finite_diff[central]"]["unsettled_steps"] == 0 and rows["reverse[numpy]"]["unsettled_steps"] == 0


def test_exact_methods_agree_on_a_kink_and_central_differences_are_explained():
    i = _first(lambda d: d["activation"] == "relu" and "relu(0)" in d["kinks"] and d["reg"] == "none")
    config = ag.Config(methods=("reverse[numpy]", "symbolic[cse]", "finite_diff[central]"))
    rows = {r["method"]: r for r in ag.measure(config, {"problem": i})}
    assert rows["reverse[numpy]"]["error"] <= 1e-12 and rows["symbolic[cse]"]["error"] <= 1e-12  # relu'(0) = 0 alike
    central = rows["finite_diff[central]"]
    assert central["straddles_kink"] is True
    assert central["explained"] is central["beyond"]  # a disagreement there is put down to the kink, not hidden


def test_report_lists_disagreements_with_the_problem_and_counts_crashes(tmp_path, monkeypatch):
    monkeypatch.setitem(ag.TOLERANCE, "finite_diff[central]", 0.0)  # every central row is now beyond its class
    path = tmp_path / "agreement.toml"
    path.write_text('study = "agreement"\nproblems = 5\nseed = 3\nreference_budget_s = 5.0\n'
                    'methods = ["reverse[numpy]", "finite_diff[central]", "finite_diff[no_such_scheme]"]\n')
    with pytest.raises(StudyError, match="methods: unknown 'finite_diff\\[no_such_scheme\\]'"):
        runner.run_study("agreement", out=tmp_path, config=path, progress=False)  # a config refuses unknown methods
    assert not (tmp_path / "agreement").exists()
    # a method that crashes on every problem: let the configuration through, so that measuring it raises
    monkeypatch.setitem(ag.TOLERANCE, "finite_diff[no_such_scheme]", 1e-5)
    runner.run_study("agreement", out=tmp_path, config=path, progress=False)
    t = pd.read_csv(tmp_path / "agreement" / "results.csv")
    compared = t[t["method"] == "finite_diff[central]"]
    assert len(compared) >= 3, "the reference failed on most problems"
    dis = pd.read_csv(tmp_path / "agreement" / "disagreements.csv")
    central = dis[dis["method"] == "finite_diff[central]"]
    assert sorted(central["problem"]) == sorted(compared["problem"]) and (central["seed"] == 3).all()
    crashed = t[t["method"] == "finite_diff[no_such_scheme]"]
    assert len(crashed) == len(compared) and (crashed["status"] == "error").all()
    findings = json.loads((tmp_path / "agreement" / "findings.json").read_text())
    assert findings["finite_diff_no_such_scheme_crashed"] == len(compared)
    assert findings["reverse_numpy_disagreements"] == 0
    report = (tmp_path / "agreement" / "report.md").read_text()
    assert "problem(seed, index)" in report and "Crashes per method" in report
