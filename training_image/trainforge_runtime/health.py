"""Training health rules: spot NaNs, exploding/vanishing gradients, stalls, overfitting and
input-bound or idle GPUs while the job runs, instead of after hours of wasted compute.

`HealthMonitor.observe(step, metrics)` is fed once per step (validation metrics when they exist).
Each rule keeps a small amount of state and reports a `Finding` once per *episode*: it fires when
its condition becomes true and re-arms only after the condition has cleared, so a job stuck in a bad
state produces one finding, not one per step. A finding with `action: stop` raises `HealthStop`
after it is recorded; the runtime turns that into exit code 65 with the rule as the reason.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from trainforge_api.exitcodes import HEALTH_STOP
from trainforge_api.trainingjob import HealthRule

log = logging.getLogger(__name__)

EXIT_HEALTH_STOP = HEALTH_STOP
FINDINGS_METRIC = "trainforge_health_findings_total"


@dataclass(frozen=True)
class Finding:
    rule: str
    step: int
    message: str
    action: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HealthStop(Exception):  # noqa: N818 - the name says what the runtime does with it
    """A rule with `action: stop` fired; the runtime exits with code 65."""

    exit_code = EXIT_HEALTH_STOP

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"health rule {finding.rule} stopped the job: {finding.message}")
        self.finding = finding


class _CounterLike(Protocol):
    def labels(self, *args: str, **kwargs: str) -> Any: ...


# --- rule checks ---------------------------------------------------------------------------------
# A check sees the step's metrics and returns a message while its condition holds, None when it
# does not, and SKIP when this step carries nothing the rule looks at (the episode state stays).


class _Skip:
    pass


SKIP = _Skip()
Verdict = str | None | _Skip
Check = Callable[[int, Mapping[str, float]], Verdict]

DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "nan_loss": {},
    # absolute ceiling, and a jump of `factor` x the median of the last `window` norms
    "exploding_gradients": {"threshold": 1000.0, "factor": 10.0, "window": 20, "min_steps": 5},
    "vanishing_gradients": {"threshold": 1e-7, "patience": 5},
    # no relative improvement of at least min_delta on the best loss for `window` steps
    "loss_not_decreasing": {"window": 100, "min_delta": 0.01},
    # val loss above its best by min_delta for `patience` evaluations while train loss still falls
    "overfitting": {"patience": 3, "min_delta": 0.0},
    "low_gpu_utilization": {"threshold": 0.3, "window": 20, "warmup_steps": 10},
    # share of step time spent waiting for data, averaged over `window` steps
    "dataloader_bound": {"threshold": 0.5, "window": 20, "warmup_steps": 5},
}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _num(m: Mapping[str, float], key: str) -> float | None:
    """The metric as a finite float, or None when absent or NaN/inf."""
    value = m.get(key)
    return float(value) if value is not None and math.isfinite(value) else None


def _nan_loss(_: Mapping[str, float]) -> Check:
    def check(step: int, m: Mapping[str, float]) -> Verdict:
        keys = [k for k in ("loss", "val_loss") if k in m]
        for key in keys:
            if not _finite(m[key]):
                return f"{key} is {m[key]} at step {step}; lower the learning rate or check inputs"
        return None if keys else SKIP

    return check


def _exploding(p: Mapping[str, float]) -> Check:
    recent: deque[float] = deque(maxlen=int(p["window"]))

    def check(step: int, m: Mapping[str, float]) -> Verdict:
        g = m.get("grad_norm")
        if g is None:
            return SKIP
        if not _finite(g):
            return f"grad_norm is {g} at step {step}; clip gradients or lower the learning rate"
        message = None
        if g > p["threshold"]:
            message = f"grad_norm {g:.4g} exceeds {p['threshold']:.4g} at step {step}"
        elif len(recent) >= p["min_steps"]:
            median = sorted(recent)[len(recent) // 2]
            if median > 0 and g > p["factor"] * median:
                message = (
                    f"grad_norm {g:.4g} is over {p['factor']:g}x the recent median {median:.4g}"
                )
        if message is None:
            recent.append(g)  # keep spikes out of the baseline
            return None
        return message + "; clip gradients or lower the learning rate"

    return check


def _vanishing(p: Mapping[str, float]) -> Check:
    low = 0

    def check(step: int, m: Mapping[str, float]) -> Verdict:
        nonlocal low
        g = m.get("grad_norm")
        if g is None or not _finite(g):
            return SKIP
        low = low + 1 if g < p["threshold"] else 0
        if low >= p["patience"]:
            return (
                f"grad_norm below {p['threshold']:.1e} for {low} steps (now {g:.3g}); check "
                "initialisation, activations and the learning rate"
            )
        return None

    return check


def _not_decreasing(p: Mapping[str, float]) -> Check:
    best = math.inf
    since = 0

    def check(step: int, m: Mapping[str, float]) -> Verdict:
        nonlocal best, since
        loss = _num(m, "loss")
        if loss is None:
            return SKIP
        if best == math.inf or loss < best - abs(best) * p["min_delta"]:
            best, since = loss, 0
            return None
        since += 1
        if since >= p["window"]:
            return (
                f"loss has not improved by {p['min_delta']:.0%} on its best {best:.4g} for "
                f"{since} steps; raise the learning rate or check the data and labels"
            )
        return None

    return check


def _overfitting(p: Mapping[str, float]) -> Check:
    best_val = math.inf
    train_at_best = math.inf
    worse = 0
    last_train: float | None = None

    def check(step: int, m: Mapping[str, float]) -> Verdict:
        nonlocal best_val, train_at_best, worse, last_train
        current = _num(m, "loss")
        last_train = current if current is not None else last_train
        val = _num(m, "val_loss")
        if val is None or last_train is None:
            return SKIP
        if val <= best_val:
            best_val, train_at_best, worse = val, last_train, 0
            return None
        if val > best_val * (1 + p["min_delta"]):
            worse += 1
        if worse >= p["patience"] and last_train < train_at_best:
            return (
                f"val_loss {val:.4g} has risen above its best {best_val:.4g} for {worse} "
                f"evaluations while train loss fell to {last_train:.4g}; stop early, add "
                "regularisation or more data"
            )
        return None

    return check


def _windowed_mean(
    p: Mapping[str, float], value: Callable[[Mapping[str, float]], float | None]
) -> Callable[[int, Mapping[str, float]], float | _Skip | None]:
    """A running mean over `window` observations, None until warm and full."""
    values: deque[float] = deque(maxlen=int(p["window"]))
    seen = 0

    def mean(step: int, m: Mapping[str, float]) -> float | _Skip | None:
        nonlocal seen
        v = value(m)
        if v is None:
            return SKIP
        seen += 1
        if seen <= p["warmup_steps"]:
            return None
        values.append(v)
        return sum(values) / len(values) if len(values) == values.maxlen else None

    return mean


def _gpu_util(m: Mapping[str, float]) -> float | None:
    u = _num(m, "gpu_utilization")
    if u is None:
        return None
    return u / 100.0 if u > 1.0 else u  # accept percent as well as a ratio


def _data_share(m: Mapping[str, float]) -> float | None:
    wait, compute = _num(m, "data_wait_seconds"), _num(m, "compute_seconds")
    if wait is None or compute is None:
        return None
    total = wait + compute
    return wait / total if total > 0 else None


def _low_gpu(p: Mapping[str, float]) -> Check:
    mean = _windowed_mean(p, _gpu_util)

    def check(step: int, m: Mapping[str, float]) -> Verdict:
        avg = mean(step, m)
        if isinstance(avg, _Skip):
            return SKIP
        if avg is not None and avg < p["threshold"]:
            return (
                f"GPU utilisation averaged {avg:.0%} over {int(p['window'])} steps (below "
                f"{p['threshold']:.0%}); raise the batch size or speed up the input pipeline"
            )
        return None

    return check


def _dataloader_bound(p: Mapping[str, float]) -> Check:
    mean = _windowed_mean(p, _data_share)

    def check(step: int, m: Mapping[str, float]) -> Verdict:
        avg = mean(step, m)
        if isinstance(avg, _Skip):
            return SKIP
        if avg is not None and avg > p["threshold"]:
            return (
                f"{avg:.0%} of step time went to waiting for data over {int(p['window'])} steps; "
                "add DataLoader workers, enable pin_memory or prefetch"
            )
        return None

    return check


_FACTORIES: dict[str, Callable[[Mapping[str, float]], Check]] = {
    "nan_loss": _nan_loss,
    "exploding_gradients": _exploding,
    "vanishing_gradients": _vanishing,
    "loss_not_decreasing": _not_decreasing,
    "overfitting": _overfitting,
    "low_gpu_utilization": _low_gpu,
    "dataloader_bound": _dataloader_bound,
}


def resolve_params(rule: HealthRule) -> dict[str, float]:
    """Defaults overlaid with the rule's params; unknown names are rejected up front."""
    defaults = DEFAULT_PARAMS[rule.rule]
    unknown = sorted(set(rule.params) - set(defaults))
    if unknown:
        allowed = ", ".join(sorted(defaults)) or "none"
        raise ValueError(
            f"health rule {rule.rule}: unknown params {', '.join(unknown)} (allowed: {allowed})"
        )
    return {**defaults, **rule.params}


class _RuleState:
    def __init__(self, rule: HealthRule) -> None:
        self.rule = rule
        self.check = _FACTORIES[rule.rule](resolve_params(rule))
        self.active = False  # inside an episode: already reported

    def observe(self, step: int, metrics: Mapping[str, float]) -> Finding | None:
        message = self.check(step, metrics)
        if isinstance(message, _Skip):
            return None
        if message is None:
            self.active = False
            return None
        if self.active:
            return None
        self.active = True
        return Finding(self.rule.rule, step, message, self.rule.action)


class HealthMonitor:
    """Evaluates the configured rules each step; records, counts and logs what fires.

    `counter` is a prometheus Counter named `trainforge_health_findings_total` with a `rule` label
    (plus any of `labels`' keys), or pass a `registry` to have one created here.
    """

    def __init__(
        self,
        rules: Iterable[HealthRule],
        *,
        counter: _CounterLike | None = None,
        registry: Any = None,
        labels: Mapping[str, str] | None = None,
        raise_on_stop: bool = True,
    ) -> None:
        self._rules = [_RuleState(r) for r in rules]
        self._labels = dict(labels or {})
        self._raise = raise_on_stop
        self.findings: list[Finding] = []
        if counter is None and registry is not None:
            counter = make_findings_counter(registry, tuple(self._labels))
        self._counter = counter

    def observe(self, step: int, metrics: Mapping[str, float]) -> list[Finding]:
        """New findings at this step; raises HealthStop after recording a stop finding."""
        new = [f for s in self._rules if (f := s.observe(step, metrics)) is not None]
        for finding in new:
            self._record(finding)
        stop = next((f for f in new if f.action == "stop"), None)
        if stop is not None and self._raise:
            raise HealthStop(stop)
        return new

    def _record(self, finding: Finding) -> None:
        self.findings.append(finding)
        log.warning(
            "health finding rule=%s step=%d action=%s: %s",
            finding.rule,
            finding.step,
            finding.action,
            finding.message,
        )
        if self._counter is not None:
            self._counter.labels(**self._labels, rule=finding.rule).inc()

    def to_list(self) -> list[dict[str, Any]]:
        """Findings as plain dicts, for /progress, status and the termination message."""
        return [f.to_dict() for f in self.findings]


def make_findings_counter(registry: Any, label_names: tuple[str, ...] = ()) -> Any:
    """Create the findings counter on `registry` (labels: the caller's plus `rule`)."""
    from prometheus_client import Counter

    return Counter(
        FINDINGS_METRIC.removesuffix("_total"),
        "Health rule findings, once per episode",
        [*label_names, "rule"],
        registry=registry,
    )
