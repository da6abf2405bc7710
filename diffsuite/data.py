"""Data sets that need no download, deterministic splits, standardisation and seeded minibatches.

    ds_ = diffsuite.data.load("digits", test_fraction=0.25, seed=0)    # standardised on the train split
    for X, y in ds_.batches(batch_size=32, rng=np.random.default_rng(0)):
        ...

Real data: scikit-learn's bundled ``digits`` (1797 8x8 images, 10 classes) and ``breast_cancer``
(569 samples, 30 features, 2 classes); they ship inside the package (optional extra ``data``:
``pip install diffsuite[data]``). Synthetic: ``moons`` (two interleaved half circles) and ``spirals``
(k interleaved arms), generated here from a seed.

Every array that enters a ``Dataset`` is checked once, at construction, by ``check_data``: a float
matrix (n, features), finite, with integer labels 0..k-1 of length n. A bad set is a ValueError naming
the array and the first bad entry, before any training starts.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import MissingDependency
from .labels import MAX_LABEL, label_values, plain

LABEL_KINDS = ("index", "onehot", "binary", "pm1")


def check_data(X, y, *, n_classes: int | None = None, n_features: int | None = None,
               name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """(X as float64 (n, d), y as int64 (n,)) or a ValueError saying what is wrong and where."""
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: X must be a numeric matrix (samples, features); got {type(X).__name__}") from None
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name}: X must have shape (samples, features) with at least one sample; got {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name}: X must have {n_features} features (columns); got {X.shape[1]}")
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        i, j = bad[0]
        raise ValueError(f"{name}: X must be finite; X[{i}, {j}] is {X[i, j]} ({len(bad)} non-finite entries in "
                         "all). Impute or drop those samples first.")
    y_raw = np.asarray(y)
    if y_raw.ndim != 1 or y_raw.shape[0] != X.shape[0]:
        raise ValueError(f"{name}: y must be a vector of {X.shape[0]} integer labels (one per row of X); "
                         f"got shape {y_raw.shape}")
    y_num = label_values(y_raw, name)
    # the range is checked on the values as given, before the cast to int64 (which would wrap 2**64 - 1 to -1
    # and make 1e20 a negative number)
    k = n_classes if n_classes is not None else min(int(y_num.max()) + 1, MAX_LABEL + 1)
    out = np.flatnonzero((y_num < 0) | (y_num >= k))
    if len(out):
        limit = f"0..{k - 1}" if n_classes is not None or k <= MAX_LABEL else f"0..{MAX_LABEL} (2^31 - 1)"
        raise ValueError(f"{name}: labels must lie in {limit}; y[{out[0]}] is {plain(y_raw[out[0]])!r} "
                         f"({len(out)} out of range). Encode the classes as 0..k-1, e.g. "
                         "np.unique(y, return_inverse=True)[1].")
    y_int = y_num.astype(np.int64)
    return X, y_int


def as_targets(y: np.ndarray, n_classes: int, kind: str = "index") -> np.ndarray:
    """Labels in the form a loss wants: ``index`` (n,) ints for cross_entropy; ``onehot`` (n, k) floats for
    quadratic; ``binary`` (n, 1) in {0, 1} and ``pm1`` (n, 1) in {-1, +1} for two classes (BCE, hinge)."""
    if kind == "index":
        return y
    if kind == "onehot":
        return np.eye(n_classes)[y]
    if kind in ("binary", "pm1"):
        if n_classes != 2:
            raise ValueError(f"targets kind {kind!r} needs two classes; this set has {n_classes}: use 'index' "
                             "(cross_entropy) or 'onehot' (quadratic)")
        t = y[:, None].astype(np.float64)
        return t if kind == "binary" else 2 * t - 1
    raise ValueError(f"targets kind must be one of {', '.join(LABEL_KINDS)}; got {kind!r}")


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of exactly ``n`` samples, each class in proportion to its count (largest remainders, as
    scikit-learn's stratified splits allocate), and at least two of each (one for each split later), chosen by
    ``default_rng(seed)``. A ValueError if a class has fewer than two samples or n cannot give each two."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"n must be a whole number of samples; got {n!r}")
    if n > len(y):
        raise ValueError(f"a subset of {n} samples cannot be drawn from {len(y)}; ask for at most {len(y)}")
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < 2 or n < 2 * len(classes):
        raise ValueError(f"a stratified subset needs two samples of each class; the {len(classes)} classes have "
                         f"{counts.tolist()} and {n} were asked for (ask for at least {2 * len(classes)})")
    target = n * counts / counts.sum()
    alloc = np.minimum(np.maximum(2, np.floor(target).astype(int)), counts)
    while alloc.sum() < n:  # the largest remainder first (ties: the first class)
        room = np.where(alloc < counts, target - alloc, -np.inf)
        alloc[int(np.argmax(room))] += 1
    while alloc.sum() > n:  # (the two-per-class floor overshot: take from the largest excess)
        excess = np.where(alloc > 2, alloc - target, -np.inf)
        alloc[int(np.argmax(excess))] -= 1
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, alloc)]))


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), sorted: each class contributes round(test_fraction * its count) samples
    (at least one if it has two or more) to test, chosen by ``default_rng(seed)``. Deterministic."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float, np.integer, np.floating)):
        raise ValueError(f"test_fraction must be a number strictly between 0 and 1; got {test_fraction!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1; got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n_test = min(len(idx) - 1, max(1 if len(idx) > 1 else 0, round(test_fraction * len(idx))))
        test.append(rng.permutation(idx)[:n_test])
    test_idx = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(y)), test_idx), test_idx


@dataclass(frozen=True)
class Standardizer:
    """x -> (x - mean) / std, fitted on training rows; constant columns (std 0) are only centred."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        std = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(std > 0, std, 1.0))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.std


@dataclass(frozen=True, eq=False)
class Dataset:
    """A checked train/test split. ``X_*``: float64 (n, features); ``y_*``: int64 labels 0..n_classes-1."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    def __post_init__(self):
        if not (isinstance(self.n_classes, (int, np.integer)) and self.n_classes >= 2):
            raise ValueError(f"n_classes must be an int >= 2; got {self.n_classes!r}")
        X, y = check_data(self.X_train, self.y_train, n_classes=self.n_classes, name=f"{self.name} train")
        Xt, yt = check_data(self.X_test, self.y_test, n_classes=self.n_classes, n_features=X.shape[1],
                            name=f"{self.name} test")
        for attr, value in (("X_train", X), ("y_train", y), ("X_test", Xt), ("y_test", yt)):
            object.__setattr__(self, attr, value)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    def targets(self, kind: str = "index", split: str = "train") -> np.ndarray:
        """The labels of ``split`` ("train" or "test") as ``as_targets`` makes them."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
        return as_targets(self.y_train if split == "train" else self.y_test, self.n_classes, kind)

    def batches(self, batch_size: int, rng: np.random.Generator, kind: str = "index",
                drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of (X, targets) minibatches of the training split in an order drawn from ``rng``."""
        whole = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
        if not (whole and batch_size >= 1):
            raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy Generator, e.g. np.random.default_rng(seed); got "
                            f"{type(rng).__name__}")
        targets = self.targets(kind)
        order = rng.permutation(len(self.y_train))
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield self.X_train[idx], targets[idx]

    def describe(self) -> str:
        return (f"{self.name}: {len(self.y_train)} train / {len(self.y_test)} test, {self.n_features} features, "
                f"{self.n_classes} classes")


# ----- sources -----
#: name -> (scikit-learn's loader, its bundled file under sklearn/datasets/data/, header lines)
BUNDLED = {"digits": ("load_digits", "digits.csv.gz", 0), "breast_cancer": ("load_breast_cancer", "breast_cancer.csv", 1)}


def _sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of a set bundled with scikit-learn. The CSV file is read directly where it is found: importing
    scikit-learn (and SciPy with it) takes seconds, reading 1797 rows milliseconds; else its loader runs.
    tests/test_data.py checks that both give the same arrays."""
    loader, filename, header = BUNDLED[name]
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is None:  # (MissingDependency: studies record the row as "unavailable", not as an error)
        raise MissingDependency(f"the {name} data set (it ships with scikit-learn)", "sklearn", "data",
                                "'moons' and 'spirals' need nothing")
    path = Path(spec.origin).parent / "datasets" / "data" / filename
    if path.exists():
        table = np.loadtxt(path, delimiter=",", skiprows=header, usecols=None if header == 0 else range(31))
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn import datasets
    bunch = getattr(datasets, loader)()
    return bunch.data, bunch.target


def make_moons(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (class 0 upper, class 1 lower), Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    n0 = n // 2
    a0, a1 = np.linspace(0, np.pi, n0), np.linspace(0, np.pi, n - n0)
    X = np.concatenate([np.c_[np.cos(a0), np.sin(a0)], np.c_[1 - np.cos(a1), 0.5 - np.sin(a1)]])
    y = np.r_[np.zeros(n0, dtype=np.int64), np.ones(n - n0, dtype=np.int64)]
    return X + noise * rng.normal(size=X.shape), y


def make_spirals(n: int = 600, classes: int = 3, noise: float = 0.2, turns: float = 1.0,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms (CS231n's toy set): radius 0..1, angle noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    per = np.full(classes, n // classes)
    per[: n % classes] += 1
    X, y = [], []
    for c, m in enumerate(per):
        r = np.linspace(0.0, 1.0, m)
        t = np.linspace(c * 2 * np.pi / classes, c * 2 * np.pi / classes + turns * 2 * np.pi, m) \
            + noise * rng.normal(size=m)
        X.append(np.c_[r * np.sin(t), r * np.cos(t)])
        y.append(np.full(m, c, dtype=np.int64))
    return np.concatenate(X), np.concatenate(y)


SOURCES = {
    "digits": lambda seed: _sklearn("digits"),
    "breast_cancer": lambda seed: _sklearn("breast_cancer"),
    "moons": lambda seed: make_moons(seed=seed),
    "spirals": lambda seed: make_spirals(seed=seed),
}


def load(name: str, *, test_fraction: float = 0.25, seed: int = 0, standardize: bool = True,
         n_samples: int | None = None) -> Dataset:
    """A named set (``digits``, ``breast_cancer``, ``moons``, ``spirals``) split by ``stratified_split``.

    ``standardize``: fit a ``Standardizer`` on the training rows and apply it to both splits.
    ``n_samples``: keep a stratified subset of exactly that many samples first (small quick runs;
    ``stratified_subset``: each class in proportion, at least two of each).
    """
    try:
        source = SOURCES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(SOURCES)}") from None
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"seed must be an int >= 0; got {seed!r}")
    X, y = check_data(*source(seed), name=name)
    if n_samples is not None:
        k = int(y.max()) + 1
        if not (isinstance(n_samples, (int, np.integer)) and not isinstance(n_samples, bool)):
            raise ValueError(f"n_samples must be None (all {len(y)} samples of {name}) or an int; got {n_samples!r}")
        if n_samples < 2 * k:  # a stratified split needs two samples of each class: one to train on, one to test
            raise ValueError(f"n_samples must be at least {2 * k} for {name} (two per class for the {k} classes: one "
                             f"for each split) or None for all {len(y)}; got {n_samples}")
    if n_samples is not None and n_samples < len(y):
        keep = stratified_subset(y, int(n_samples), seed + 1)
        X, y = X[keep], y[keep]
    train, test = stratified_split(y, test_fraction, seed)
    X_train, X_test = X[train], X[test]
    if standardize:
        scale = Standardizer.fit(X_train)
        X_train, X_test = scale(X_train), scale(X_test)
    return Dataset(name, X_train, y[train], X_test, y[test], int(y.max()) + 1)


__all__ = ["Dataset", "LABEL_KINDS", "SOURCES", "Standardizer", "as_targets", "check_data", "load", "make_moons",
           "make_spirals", "stratified_split", "stratified_subset"]
