"""diffsuite.data: bundled sets, stratified splits, standardisation, seeded minibatches, bad-data errors."""
import numpy as np
import pytest

from diffsuite.data import Dataset, as_targets, check_data, load, make_moons, make_spirals, stratified_split

sklearn_datasets = pytest.importorskip("sklearn.datasets")


def test_digits_split_is_stratified_deterministic_and_standardised():
    from sklearn.preprocessing import StandardScaler
    raw = sklearn_datasets.load_digits()
    d = load("digits", test_fraction=0.25, seed=0)
    assert d.n_classes == 10 and d.n_features == 64
    assert len(d.y_train) + len(d.y_test) == 1797
    # each class gives round(0.25 * its count) samples to test (counts from sklearn, not from our code)
    assert np.array_equal(np.bincount(d.y_test), np.round(0.25 * np.bincount(raw.target)).astype(int))
    # standardised with the train split's statistics, as sklearn's StandardScaler does
    train_idx, _ = stratified_split(raw.target, 0.25, 0)
    np.testing.assert_allclose(d.X_train, StandardScaler().fit_transform(raw.data[train_idx]), atol=1e-12)
    again = load("digits", test_fraction=0.25, seed=0)
    assert np.array_equal(again.X_test, d.X_test) and np.array_equal(again.y_train, d.y_train)
    other = load("digits", test_fraction=0.25, seed=1)
    assert not np.array_equal(other.y_train, d.y_train)


@pytest.mark.parametrize("name, loader", [("digits", "load_digits"), ("breast_cancer", "load_breast_cancer")])
def test_bundled_files_read_directly_equal_scikit_learns_loaders(name, loader):
    from diffsuite.data import SOURCES
    X, y = SOURCES[name](0)
    bunch = getattr(sklearn_datasets, loader)()
    assert np.array_equal(X, bunch.data) and np.array_equal(y, bunch.target)


def test_split_indices_are_disjoint_and_cover_everything():
    y = np.array([0] * 7 + [1] * 3 + [2] * 2)
    train, test = stratified_split(y, 0.3, seed=5)
    assert np.array_equal(np.sort(np.r_[train, test]), np.arange(12))
    assert list(np.bincount(y[test])) == [2, 1, 1]  # round(2.1), round(0.9), round(0.6)


def test_breast_cancer_is_two_classes_with_binary_and_pm1_targets():
    d = load("breast_cancer", seed=0)
    assert d.n_classes == 2 and d.n_features == 30
    t = d.targets("pm1")
    assert t.shape == (len(d.y_train), 1) and set(np.unique(t)) == {-1.0, 1.0}
    assert np.array_equal(d.targets("binary")[:, 0], d.y_train)


def test_batches_cover_the_epoch_once_in_a_seeded_order():
    d = load("moons", seed=0)
    first = list(d.batches(64, np.random.default_rng(3), kind="onehot"))
    again = list(d.batches(64, np.random.default_rng(3), kind="onehot"))
    assert [len(X) for X, _ in first] == [64] * (len(d.y_train) // 64) + ([len(d.y_train) % 64] if len(d.y_train) % 64 else [])
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    rows = np.concatenate([X for X, _ in first])
    assert np.array_equal(np.sort(rows, axis=0), np.sort(d.X_train, axis=0))
    assert first[0][1].shape == (64, 2) and np.all(first[0][1].sum(axis=1) == 1)
    assert all(len(X) == 64 for X, _ in d.batches(64, np.random.default_rng(3), drop_last=True))


def test_synthetic_generators_by_geometry():
    X, y = make_moons(n=10, noise=0.0)
    np.testing.assert_allclose(np.hypot(*X[y == 0].T), 1.0)            # upper moon: the unit circle
    np.testing.assert_allclose(np.hypot(X[y == 1, 0] - 1, X[y == 1, 1] - 0.5), 1.0)  # lower: centred (1, 0.5)
    X, y = make_spirals(n=31, classes=3, noise=0.0)
    assert list(np.bincount(y)) == [11, 10, 10]
    np.testing.assert_allclose(np.hypot(*X[y == 1].T), np.linspace(0, 1, 10))


def test_as_targets():
    y = np.array([2, 0, 1])
    assert np.array_equal(as_targets(y, 3, "onehot"), [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="needs two classes"):
        as_targets(y, 3, "pm1")


@pytest.mark.parametrize("X, y, match", [
    ([[0.0, np.nan], [1.0, 2.0]], [0, 1], r"X must be finite; X\[0, 1\] is nan"),
    ([0.0, 1.0], [0, 1], r"X must have shape \(samples, features\)"),
    ([[0.0], [1.0]], [0, 1, 1], "y must be a vector of 2 integer labels"),
    ([[0.0], [1.0]], [0.0, 0.5], r"integer class labels; y\[1\] is 0.5"),
    ([[0.0], [1.0]], [0, 3], r"labels must lie in 0..1; y\[1\] is 3"),
    ([[0.0], [1.0]], [0, -1], r"labels must lie in 0..1; y\[1\] is -1"),
])
def test_bad_data_is_a_clear_error_at_construction(X, y, match):
    with pytest.raises(ValueError, match=match):
        Dataset("toy", np.asarray(X), np.asarray(y), np.zeros((1, 1)), np.zeros(1, dtype=int), n_classes=2)


def test_test_split_must_match_features_and_unknown_names_are_errors():
    with pytest.raises(ValueError, match="toy test: X must have 2 features"):
        Dataset("toy", np.zeros((2, 2)), np.array([0, 1]), np.zeros((1, 3)), np.array([0]), n_classes=2)
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load("mnist")
    with pytest.raises(ValueError, match="test_fraction"):
        load("moons", test_fraction=1.0)
    assert check_data([[1, 2]], [True])[1].dtype == np.int64


def test_a_missing_scikit_learn_is_a_missing_dependency(monkeypatch):
    """Studies record a MissingDependency as "unavailable" (a plain ImportError was an "error" row)."""
    import importlib.util

    from diffsuite.errors import MissingDependency
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(MissingDependency, match=r"scikit-learn.*diffsuite\[data\].*moons"):
        load("digits")
