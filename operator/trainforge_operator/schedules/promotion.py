"""The promotion gate as a pure function: does a finished run become the champion, and why.

A run is promoted only when it (1) succeeded, (2) reported the objective metric on the test split,
(3) fired no health rule with action `stop`, (4) beat the baseline it computed itself on the same
split (a model that cannot beat the majority class or the mean predictor has learned nothing),
and (5) beat the current champion by more than `margin`. The verdict's reason is the text of the
`ModelPromoted` / `NotPromoted` Event, so it quotes the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainforge_api.trainingschedule import Champion, Promotion


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    metric: float | None = None
    baseline: float | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def improvement(metric: float, other: float, gate: Promotion) -> float:
    """How much better `metric` is than `other` (positive: better), in the gate's direction."""
    return metric - other if gate.direction == "maximize" else other - metric


def judge(
    succeeded: bool,
    results: Mapping[str, Any],
    findings: Sequence[Mapping[str, Any]],
    champion: Champion | None,
    gate: Promotion,
) -> Verdict:
    """The verdict on one finished run."""
    if not succeeded:
        return Verdict(False, "the run failed")
    name = gate.metric
    metric = _number(results.get(name))
    if metric is None:
        return Verdict(
            False,
            f"the run reported no finite {name} in status.results; the trainer must report the "
            "objective on the test split (or set spec.promotion.metric to a key it reports)",
        )
    baseline = _number(results.get(gate.baseline_key))
    stops = [str(f.get("rule") or "?") for f in findings if f.get("action") == "stop"]
    if stops:
        return Verdict(False, f"health rule {', '.join(stops)} stopped the run", metric, baseline)
    if baseline is None and gate.require_baseline:
        return Verdict(
            False,
            f"the run reported no {gate.baseline_key} to compare with; the trainer must compute "
            "its baseline on the test split (or set spec.promotion.requireBaseline: false)",
            metric,
        )
    if baseline is not None and improvement(metric, baseline, gate) <= 0:
        return Verdict(
            False,
            f"{name} {metric:.4g} does not beat the baseline {baseline:.4g}",
            metric,
            baseline,
        )
    versus = "" if baseline is None else f"the baseline {baseline:.4g}"
    if champion is not None:
        gain = improvement(metric, champion.metric, gate)
        if gain <= gate.margin:
            return Verdict(
                False,
                f"{name} {metric:.4g} is not better than the champion {champion.run} "
                f"({champion.metric:.4g}) by more than the margin {gate.margin:g}",
                metric,
                baseline,
            )
        versus += (
            " and " if versus else ""
        ) + f"the champion {champion.run} ({champion.metric:.4g})"
    return Verdict(True, f"{name} {metric:.4g} beats {versus or 'nothing yet'}", metric, baseline)
