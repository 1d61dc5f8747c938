"""Every dashboard query returns data from a real Prometheus scraping a real run.

Training panels: a local-mode digits job (`trainforge run ... --local`) scraped by Debian's
Prometheus; every worker-side query is evaluated over the run's window through the HTTP API and
must return at least one real (non-NaN) sample. Language-model panels (tokens/s) are checked the
same way against a short local gpt-fsdp run. Operator panels: the same, against the real
operator running on the control-plane tier (tests/chart/operator_live.py) with a small mix of
TrainingJobs, or against TRAINFORGE_OPERATOR_METRICS=host:port when that names a running
operator. The operator needs an API server: without the tier's binaries those tests fail with the
command that builds them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dashboard_queries import Query, expand, load_dashboards, queries, source
from live_run import LiveRun, language_model_manifest, live_training_run, operator_target
from operator_live import SCENARIO_SECONDS, control_plane_missing, live_operator
from promfixture import has_finite_value


def torch_cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True, scope="module")
def _tools_present() -> None:
    """A missing tool fails the tier with what to run; it never skips quietly."""
    if shutil.which("prometheus") is None:
        pytest.fail(
            "needs Debian's Prometheus: run hack/lint-chart.sh or apt-get install prometheus"
        )
    if importlib.util.find_spec("torch") is None:
        pytest.fail("needs the runtime extra (torch): make venv")


ALL_QUERIES = queries(load_dashboards())
WORKER_QUERIES = [q for q in ALL_QUERIES if source(q) == "worker"]
OPERATOR_QUERIES = [q for q in ALL_QUERIES if source(q) == "operator"]
RATE_INTERVAL = "10s"  # 10 scrapes at the fixture's 1 s interval
# Queries that cannot return data yet, each with the change that fixes it. The test below fails
# once one of them starts returning data, so the entry is removed rather than forgotten.
KNOWN_GAPS: dict[str, str] = {}
# Worker series that this CPU-only digits run cannot produce, each with the reason. They must stay
# empty here (so the list stays honest); the GPU ones are checked like every other panel wherever
# CUDA is present.
GPU_ONLY = {
    "training / GPU utilization per rank / A": "GPU series are exported only where CUDA is present",
    "training / GPU memory used per rank / A": "GPU series are exported only where CUDA is present",
}
# Checked against a short gpt run instead of the digits one (a classifier has no tokens).
LANGUAGE_MODEL_ONLY = {
    "training / Tokens/s / A": "digits is a classifier; tokens/s comes from language-model jobs",
}
CPU_RUN_GAPS = {**({} if torch_cuda_available() else GPU_ONLY), **LANGUAGE_MODEL_ONLY}


@dataclass
class Live:
    """The training run, and whether (or why not) the operator was scraped alongside it."""

    run: LiveRun
    operator: str | None
    why_no_operator: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("live")
    with contextlib.ExitStack() as stack:
        target = operator_target()
        why = ""
        if target is None:
            why = control_plane_missing() or ""
            if not why:
                target = stack.enter_context(live_operator(workdir / "operator"))
        extra = {"trainforge-operator": [target]} if target else None
        window = SCENARIO_SECONDS + 10 if target else 0.0
        run = stack.enter_context(
            live_training_run(workdir / "training", extra_jobs=extra, min_window_s=window)
        )
        assert run.exit_code == 0, run.log[-3000:]
        yield Live(run, target, why)


@pytest.fixture(scope="module")
def run(live: Live) -> LiveRun:
    return live.run


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    """A short local-mode gpt-fsdp run with its own Prometheus, for language-model panels."""
    workdir = tmp_path_factory.mktemp("live-lm")
    with live_training_run(workdir, manifest=language_model_manifest()) as lm:
        assert lm.exit_code == 0, lm.log[-3000:]
        yield lm


def evaluate(run: LiveRun, query: Query) -> list[str]:
    """Problems with one query over the run's window (empty list: it returned real data)."""
    expr = expand(query.expr, {"namespace": run.namespace, "job": run.job}, RATE_INTERVAL)
    result = run.prometheus.query_range(expr, run.start, run.end)
    if not result:
        return [f"{query.label}: empty result for {expr}"]
    if not has_finite_value(result):
        return [f"{query.label}: only NaN/Inf samples for {expr}"]
    return []


def test_run_was_scraped(run: LiveRun) -> None:
    assert run.job == "digits-ddp"
    ranks = run.prometheus.query_range("count(trainforge_train_step)", run.start, run.end)
    assert max(float(v) for _, v in ranks[0]["values"]) == 2


def test_training_queries_return_data(run: LiveRun) -> None:
    checked = [q for q in WORKER_QUERIES if q.label not in CPU_RUN_GAPS]
    problems = [p for q in checked for p in evaluate(run, q)]
    assert problems == [], "\n".join(problems)


def test_cpu_run_gaps_are_still_empty(run: LiveRun) -> None:
    gaps = [q for q in WORKER_QUERIES if q.label in CPU_RUN_GAPS]
    assert {q.label for q in gaps} == set(CPU_RUN_GAPS)
    filled = [q.label for q in gaps if not evaluate(run, q)]
    assert filled == [], f"these now return data: remove them from CPU_RUN_GAPS: {filled}"


def test_language_model_queries_return_data(lm_run: LiveRun) -> None:
    assert lm_run.job == "gpt-fsdp"
    checked = [q for q in WORKER_QUERIES if q.label in LANGUAGE_MODEL_ONLY]
    assert {q.label for q in checked} == set(LANGUAGE_MODEL_ONLY)
    problems = [p for q in checked for p in evaluate(lm_run, q)]
    assert problems == [], "\n".join(problems)


def test_operator_queries_return_data(live: Live) -> None:
    if live.operator is None:
        pytest.fail(live.why_no_operator)
    checked = [q for q in OPERATOR_QUERIES if q.label not in KNOWN_GAPS]
    problems = [p for q in checked for p in evaluate(live.run, q)]
    assert problems == [], "\n".join(problems)


def test_known_gaps_are_still_gaps(live: Live) -> None:
    if live.operator is None:
        pytest.fail(live.why_no_operator)
    gaps = [q for q in OPERATOR_QUERIES if q.label in KNOWN_GAPS]
    assert {q.label for q in gaps} == set(KNOWN_GAPS)
    fixed = [q.label for q in gaps if not evaluate(live.run, q)]
    assert fixed == [], f"these now return data: remove them from KNOWN_GAPS: {fixed}"


def test_variable_queries_find_the_job(run: LiveRun) -> None:
    found = run.prometheus.query_range(
        f'group by (job) (trainforge_train_step{{namespace="{run.namespace}"}})', run.start, run.end
    )
    assert {s["metric"]["job"] for s in found} == {run.job}


def test_missing_metric_is_reported(run: LiveRun) -> None:
    """The check must be able to fail: a query for a series nobody exports."""
    bogus = Query("training", "bogus", "Z", "", 'trainforge_no_such_metric{job="$job"}')
    assert evaluate(run, bogus)
