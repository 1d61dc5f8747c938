"""The digits trainer's numpy data, split and scores give scikit-learn's numbers exactly, so a
digits run trains and scores as it did when it imported scikit-learn (trainers/digits_data.py)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runtime_helpers import REPO
from sklearn.datasets import load_digits as sk_load_digits
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from trainforge_runtime.trainers import digits, digits_data


def test_the_data_is_scikit_learns_digits() -> None:
    x, y = digits_data.load_digits()
    want_x, want_y = sk_load_digits(return_X_y=True)
    assert x.shape == (1797, 64)
    assert np.array_equal(x, want_x)
    assert np.array_equal(y, want_y)


@pytest.mark.parametrize("seed", [0, 1, 7, 42, 1234])
@pytest.mark.parametrize("test_size", [0.3, 0.5])
def test_stratified_split_picks_scikit_learns_indices(seed: int, test_size: float) -> None:
    _, y = digits_data.load_digits()
    rows = np.arange(len(y))
    if test_size == 0.5:  # the trainer's second split runs on the 30% rest
        rows = train_test_split(rows, test_size=0.3, stratify=y, random_state=seed)[1]
    labels = y[rows]
    train, test = digits_data.stratified_split(labels, test_size=test_size, seed=seed)
    want_train, want_test = train_test_split(
        rows, test_size=test_size, stratify=labels, random_state=seed
    )
    assert np.array_equal(rows[train], want_train)
    assert np.array_equal(rows[test], want_test)


def test_scores_match_scikit_learn_with_missing_and_extra_labels() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, size=300)
    pred = np.where(rng.random(300) < 0.7, truth, rng.integers(0, 10, size=300))
    cases = [
        (truth, pred),
        (truth, np.where(pred == 3, 4, pred)),  # a label never predicted: its F1 is 0
        (np.where(truth == 5, 6, truth), pred),  # a label predicted but never true
    ]
    for t, p in cases:
        assert np.array_equal(digits_data.confusion_matrix(t, p), sk_confusion_matrix(t, p))
        assert digits_data.f1_macro(t, p) == pytest.approx(
            f1_score(t, p, average="macro", zero_division=0), rel=1e-12
        )


def test_the_trainer_does_not_import_scikit_learn() -> None:
    """What the copy is for: a digits rank no longer pays for scikit-learn's imports."""
    tree = ast.parse(Path(digits.__file__).read_text())
    imported = [
        n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names
    ]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert "trainforge_runtime.trainers.digits_data" in imported
    assert not [m for m in imported if m.split(".")[0] in ("sklearn", "scipy")], imported
    code = (
        "import sys; from trainforge_runtime.trainers import digits_data as d; "
        "x, y = d.load_digits(); d.f1_macro(y, y); d.stratified_split(y, 0.3, 0); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(str(REPO / p) for p in ("training_image", "api"))
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "[]"
