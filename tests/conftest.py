"""Suite-wide: wall-clock budgets never decide a test.

Library defaults carry time budgets meant to stop runaway work (symbolic: 60 s, the reference: 120 s).
On a loaded CI runner, work that merely runs slowly reached them (a small hinge network once took 75 s),
so every test runs with ``DIFFSUITE_TIME_BUDGET_SCALE`` making each time budget 20 times longer: only a
hang reaches it. Tests of the time budget itself ask for ``real_time_budgets`` (scale 1); they stop work that
never ends, so they depend on no machine's speed, and their elapsed-time checks are ceilings only a hang reaches.
"""
import pytest

HANG_SCALE = "20"


@pytest.fixture(autouse=True)
def _generous_time_budgets(monkeypatch):
    monkeypatch.setenv("DIFFSUITE_TIME_BUDGET_SCALE", HANG_SCALE)


@pytest.fixture
def real_time_budgets(monkeypatch):
    """Time budgets as written (for tests of the time budget itself, on work that never finishes)."""
    monkeypatch.delenv("DIFFSUITE_TIME_BUDGET_SCALE", raising=False)


try:  # hypothesis keeps no example database in the checkout: two test runs side by side share no files
    from hypothesis import settings
except ImportError:  # pragma: no cover - hypothesis is in the dev extra
    pass
else:
    settings.register_profile("diffsuite", database=None)
    settings.load_profile("diffsuite")
