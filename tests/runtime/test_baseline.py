"""The baselines the shipped trainers report: majority class and unigram, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainforge_runtime.baseline import comparisons, majority_class, unigram


def test_majority_class_predicts_the_most_frequent_training_label() -> None:
    scores = majority_class([0, 1, 1, 1, 2], [1, 1, 0, 2])
    assert scores["baseline_test_accuracy"] == 0.5
    prior = np.array([2, 4, 2]) / 8  # add-one smoothed counts 1+1, 3+1, 1+1 over 5+3
    expected = -np.log(prior[[1, 1, 0, 2]]).mean()
    assert scores["baseline_test_loss"] == pytest.approx(expected)


def test_unigram_is_the_token_frequency_cross_entropy() -> None:
    scores = unigram([0, 0, 0, 1], [0, 1], vocab_size=2)
    probs = np.array([4, 2]) / 6
    assert scores["baseline_val_loss"] == pytest.approx(
        -(math.log(probs[0]) + math.log(probs[1])) / 2
    )


def test_a_uniform_vocabulary_scores_log_v() -> None:
    ids = np.arange(50) % 5
    assert unigram(ids, ids, 5)["baseline_val_loss"] == pytest.approx(math.log(5))


def test_comparisons_pair_each_metric_with_its_baseline() -> None:
    scores = {"test_accuracy": 0.9, "baseline_test_accuracy": 0.1, "baseline_test_loss": 2.3}
    assert comparisons(scores) == {"test_accuracy": 0.1}
