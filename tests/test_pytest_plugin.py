"""The pytest plugin: installed through the pytest11 entry point, it gives every test suite a ``gradcheck`` fixture."""
import subprocess
import sys
from importlib.metadata import entry_points

pytest_plugins = ["pytester"]

USER_TESTS = '''
import numpy as np

def loss(xp, theta, x, y):
    return xp.mean((xp.tanh(x @ theta["W"] + theta["b"]) - y) ** 2)

rng = np.random.default_rng(0)
x, y = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
theta = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}

def test_my_loss(gradcheck):
    gradcheck(loss, theta, x, y)

def test_my_wrong_gradient(gradcheck):
    wrong = {"W": np.zeros((3, 2)), "b": np.zeros(2)}     # a hand-written gradient that is wrong
    gradcheck(loss, theta, x, y, methods=("reverse",), reference=wrong)
'''


def test_the_entry_point_is_declared():
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("diffsuite") == "diffsuite.pytest_plugin"


def test_gradcheck_fixture_passes_and_fails_in_a_users_suite(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*gradient check failed for loss: reverse disagrees with the reference*",
                                 "*worst entries*"])


def test_the_plugin_imports_nothing_heavy():
    code = ("import sys, diffsuite.pytest_plugin; "
            "print(sorted(m for m in ('torch', 'sympy', 'pandas', 'matplotlib', 'mpmath') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
