"""The promotion gate as a table: every row is one finished run against one champion."""

from __future__ import annotations

from typing import Any

import pytest

from trainforge_api.trainingschedule import Champion, Promotion
from trainforge_operator.schedules.promotion import judge

CHAMP = Champion(run="nightly-1", metric=0.90)
MAX = Promotion()
MARGIN = Promotion(margin=0.02)
LOSS = Promotion(metric="test_loss", direction="minimize")
NO_BASE = Promotion(require_baseline=False)
STOP = [{"rule": "nan_loss", "action": "stop"}]
WARN = [{"rule": "overfitting", "action": "warn"}]


def res(
    metric: float | None = None, baseline: float | None = None, key: str = "test_accuracy"
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if metric is not None:
        out[key] = metric
    if baseline is not None:
        out[f"baseline_{key}"] = baseline
    return out


ROWS: list[
    tuple[str, bool, dict[str, Any], list[dict[str, Any]], Champion | None, Promotion, bool, str]
] = [
    (
        "first run beats baseline",
        True,
        res(0.95, 0.1),
        [],
        None,
        MAX,
        True,
        "beats the baseline 0.1",
    ),
    ("beats champion", True, res(0.95, 0.1), [], CHAMP, MAX, True, "the champion nightly-1 (0.9)"),
    ("ties champion", True, res(0.90, 0.1), [], CHAMP, MAX, False, "not better than the champion"),
    ("worse than champion", True, res(0.85, 0.1), [], CHAMP, MAX, False, "not better"),
    ("within margin", True, res(0.91, 0.1), [], CHAMP, MARGIN, False, "margin 0.02"),
    ("beyond margin", True, res(0.93, 0.1), [], CHAMP, MARGIN, True, "beats"),
    ("below baseline", True, res(0.09, 0.1), [], None, MAX, False, "does not beat the baseline"),
    ("equals baseline", True, res(0.1, 0.1), [], None, MAX, False, "does not beat the baseline"),
    ("no baseline", True, res(0.95), [], None, MAX, False, "no baseline_test_accuracy"),
    ("baseline optional", True, res(0.95), [], None, NO_BASE, True, "beats nothing yet"),
    ("no metric", True, {"loss": 0.1}, [], None, MAX, False, "no finite test_accuracy"),
    ("nan metric", True, res(float("nan"), 0.1), [], None, MAX, False, "no finite"),
    ("stop finding", True, res(0.99, 0.1), STOP, None, MAX, False, "health rule nan_loss"),
    ("warn finding", True, res(0.99, 0.1), WARN, None, MAX, True, "beats"),
    ("failed run", False, res(0.99, 0.1), [], None, MAX, False, "the run failed"),
    (
        "lower loss wins",
        True,
        res(2.0, 3.5, "test_loss"),
        [],
        Champion(run="c", metric=2.5),
        LOSS,
        True,
        "beats the baseline 3.5 and the champion c (2.5)",
    ),
    (
        "higher loss loses",
        True,
        res(2.6, 3.5, "test_loss"),
        [],
        Champion(run="c", metric=2.5),
        LOSS,
        False,
        "not better",
    ),
    (
        "loss above baseline",
        True,
        res(4.0, 3.5, "test_loss"),
        [],
        None,
        LOSS,
        False,
        "does not beat",
    ),
]


@pytest.mark.parametrize(
    ("succeeded", "results", "findings", "champion", "gate", "promote", "reason"),
    [r[1:] for r in ROWS],
    ids=[r[0] for r in ROWS],
)
def test_promotion_gate(
    succeeded: bool,
    results: dict[str, Any],
    findings: list[dict[str, Any]],
    champion: Champion | None,
    gate: Promotion,
    promote: bool,
    reason: str,
) -> None:
    verdict = judge(succeeded, results, findings, champion, gate)
    assert verdict.promote is promote
    assert reason in verdict.reason
