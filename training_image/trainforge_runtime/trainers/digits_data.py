"""The digits data, split and scores with numpy alone, the same numbers scikit-learn gives.

Importing scikit-learn pulls in scipy, pandas and more: about as many CPU-seconds as torch
itself, in every rank of every digits run. The trainer needs four small pieces of it, so they
are here: the bundled `digits.csv.gz` (read from scikit-learn's package folder, which is found
without importing it), `train_test_split(stratify=..., random_state=...)` step for step (the
same indices for the same seed; tests/runtime/test_digits_data.py checks it against
scikit-learn), macro F1 and the confusion matrix.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
from pathlib import Path

import numpy as np

DIGITS_FILE = Path("datasets") / "data" / "digits.csv.gz"


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's `load_digits(return_X_y=True)`: 1797 8x8 images (64 floats) and labels."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the digits trainer reads scikit-learn's bundled digits data")
    with gzip.open(Path(spec.origin).parent / DIGITS_FILE, mode="rt", encoding="utf-8") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return data[:, :-1], data[:, -1].astype(int, copy=False)


def approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """Per-class draws that sum to `n_draws`, spread like `class_counts` (scikit-learn's
    `_approximate_mode`: the floored share, then the largest remainders, ties broken by `rng`)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    counts: np.ndarray = floored.astype(int)
    return counts


def stratified_split(y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: `train_test_split(..., test_size=test_size, stratify=y,
    random_state=seed)` (one `StratifiedShuffleSplit` round) without scikit-learn."""
    n_test = math.ceil(test_size * len(y))
    n_train = len(y) - n_test
    _, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = approximate_mode(class_counts, n_train, rng)
    t_i = approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i, members in enumerate(class_indices):
        shuffled = members.take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(shuffled[: n_i[i]])
        test.extend(shuffled[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def confusion_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Counts of (true, predicted) over the labels seen in either, sorted (scikit-learn's)."""
    labels = np.union1d(truth, pred)
    n = len(labels)
    cells = np.searchsorted(labels, truth) * n + np.searchsorted(labels, pred)
    return np.bincount(cells, minlength=n * n).reshape(n, n)


def f1_macro(truth: np.ndarray, pred: np.ndarray) -> float:
    """The unweighted mean over labels of 2tp / (2tp + fp + fn), 0 where a label has none."""
    cm = confusion_matrix(truth, pred).astype(np.float64)
    tp = np.diag(cm)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)  # (tp + fp) + (tp + fn)
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1.mean())
