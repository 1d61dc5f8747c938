"""The simple baseline every shipped trainer reports beside its own score, on the same split.

A model is only worth promoting when it beats a predictor that learned nothing about the
inputs: the majority class for a classifier, the unigram (token frequency) predictor for a
language model. The scores are named `baseline_<metric>`, so they sit beside `<metric>` in the
run's results, its metadata and the TrainingSchedule's promotion gate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PREFIX = "baseline_"


def majority_class(
    train_labels: Sequence[int] | np.ndarray, test_labels: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """Predict the most frequent training class for every test example: its accuracy, and the
    cross-entropy of predicting the training class frequencies (add-one smoothed)."""
    train = np.asarray(train_labels, dtype=np.int64)
    test = np.asarray(test_labels, dtype=np.int64)
    classes = int(max(train.max(initial=0), test.max(initial=0))) + 1
    counts = np.bincount(train, minlength=classes).astype(np.float64)
    majority = int(counts.argmax())
    prior = (counts + 1.0) / (counts.sum() + classes)
    return {
        f"{PREFIX}test_accuracy": float((test == majority).mean()) if len(test) else math.nan,
        f"{PREFIX}test_loss": float(-np.log(prior[test]).mean()) if len(test) else math.nan,
    }


def unigram(
    train_ids: Sequence[int] | np.ndarray,
    eval_ids: Sequence[int] | np.ndarray,
    vocab_size: int,
    metric: str = "val_loss",
) -> dict[str, float]:
    """Cross-entropy (nats per token) of predicting each token by its training frequency
    (add-one smoothed): the mean predictor of a language model."""
    train = np.asarray(train_ids, dtype=np.int64)
    held = np.asarray(eval_ids, dtype=np.int64)
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64)
    probs = (counts + 1.0) / (counts.sum() + vocab_size)
    return {f"{PREFIX}{metric}": float(-np.log(probs[held]).mean()) if len(held) else math.nan}


def comparisons(scores: dict[str, float]) -> dict[str, float]:
    """{metric: baseline} for every metric in `scores` that has a baseline beside it."""
    return {
        key[len(PREFIX) :]: value
        for key, value in scores.items()
        if key.startswith(PREFIX) and key[len(PREFIX) :] in scores
    }
