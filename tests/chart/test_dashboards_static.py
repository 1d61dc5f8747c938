"""Static checks of the Grafana dashboards and alert rules: structure, metric names, PromQL syntax.

Syntax is checked by the real Prometheus parser: every dashboard expression becomes a recording
rule in a scratch rules file that `promtool check rules` must accept.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard_queries import (
    GRAFANA_BUILTINS,
    KNOWN_METRICS,
    Query,
    expand,
    iter_panels,
    load_dashboards,
    metric_names,
    queries,
    source,
    variables_used,
)
from helmrender import CHART, REPO

DASHBOARDS = load_dashboards()
QUERIES = queries(DASHBOARDS)
RULES_FILE = CHART / "rules" / "trainforge-alerts.yaml"
ALERT_TESTS = REPO / "tests" / "chart" / "rules" / "trainforge-alerts.test.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool missing: apt-get install prometheus (hack/lint-chart.sh does)",
)


def test_both_dashboards_exist() -> None:
    assert set(DASHBOARDS) == {"training", "operator"}
    assert {d["uid"] for d in DASHBOARDS.values()} == {"trainforge-training", "trainforge-operator"}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_structure(name: str) -> None:
    dash = DASHBOARDS[name]
    assert dash["schemaVersion"] >= 36
    panels = list(iter_panels(dash))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    defined = {v["name"] for v in dash["templating"]["list"]}
    assert "datasource" in defined
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']}: empty query"
            missing = variables_used(target["expr"]) - defined - GRAFANA_BUILTINS
            assert not missing, f"{panel['title']}: undefined variables {missing}"


def test_training_dashboard_has_a_trainingjob_variable() -> None:
    variables = {v["name"]: v for v in DASHBOARDS["training"]["templating"]["list"]}
    assert "label_values(" in variables["job"]["definition"]
    assert variables["job"]["label"] == "TrainingJob"
    for q in (q for q in QUERIES if q.dashboard == "training"):
        names = metric_names(q.expr)
        if names & {"trainforge_train_loss", "trainforge_gpu_utilization_ratio"}:
            assert 'job="$job"' in q.expr, q.label


def test_panels_cover_the_issue() -> None:
    """Each required view has a panel whose queries use the metric that shows it."""
    required = {
        "training": {
            "trainforge_train_loss",
            "trainforge_val_loss",
            "trainforge_val_accuracy",
            "trainforge_samples_per_second",
            "trainforge_tokens_per_second",
            "trainforge_step_seconds_bucket",
            "trainforge_gpu_utilization_ratio",
            "trainforge_gpu_memory_used_bytes",
            "trainforge_checkpoint_seconds_sum",
            "trainforge_job_restarts_total",
            "trainforge_health_findings_total",
        },
        "operator": {
            "trainforge_jobs",
            "trainforge_jobs_created_total",
            "trainforge_jobs_succeeded_total",
            "trainforge_jobs_failed_total",
            "trainforge_time_to_running_seconds_bucket",
            "trainforge_reconcile_duration_seconds_bucket",
            "trainforge_api_errors_total",
            "trainforge_pending_gpus",
            "trainforge_schedule_seconds_since_last_success",
            "trainforge_schedule_champion_metric",
            "trainforge_schedule_runs_total",
            "trainforge_restarts_total",
            "trainforge_time_to_recover_seconds_bucket",
            "trainforge_lost_steps_total",
            "trainforge_job_queued_seconds_bucket",
        },
    }
    for name, metrics in required.items():
        used = set().union(*(metric_names(q.expr) for q in QUERIES if q.dashboard == name))
        assert metrics <= used, f"{name} lacks {metrics - used}"
    step = [q for q in QUERIES if "trainforge_step_seconds_bucket" in q.expr]
    assert {"0.5", "0.95"} <= {re.search(r"histogram_quantile\(([\d.]+)", q.expr)[1] for q in step}
    assert all("data_wait|compute" in q.expr for q in step)


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.label)
def test_query_uses_only_agreed_metric_names(query: Query) -> None:
    names = metric_names(query.expr)
    assert names, f"{query.label}: selects no metric"
    assert names <= KNOWN_METRICS, f"{query.label}: unknown metrics {names - KNOWN_METRICS}"


def test_every_query_reads_one_source() -> None:
    """Worker and operator metrics come from different scrapes; a query mixing them could not be
    checked live (and would break when one side is down)."""
    assert [q.label for q in QUERIES if source(q) == "mixed"] == []


def test_metric_name_extraction_is_not_fooled() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, phase) (rate(foo_bucket{job="$job", a=~"x|y"}[5m])))'
        " / on (job) group_left bar_total offset 5m"
    )
    assert metric_names(expr) == {"foo_bucket", "bar_total"}


def rules_file_for(exprs: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(exprs)
                ],
            }
        ]
    }


def promtool_check(
    tmp_path: Path, exprs: list[tuple[str, str]]
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump(rules_file_for(exprs)))
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)


@needs_promtool
def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    variables = {"namespace": "ml", "job": "digits-ddp"}
    exprs = [(q.label, expand(q.expr, variables)) for q in QUERIES]
    result = promtool_check(tmp_path, exprs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@needs_promtool
def test_promtool_rejects_broken_promql(tmp_path: Path) -> None:
    """The syntax check above must be able to fail."""
    result = promtool_check(tmp_path, [("bad", "sum(rate(trainforge_jobs[5m])")])
    assert result.returncode != 0


@needs_promtool
def test_alert_rules_are_valid_and_fire() -> None:
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES_FILE)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [PROMTOOL, "test", "rules", str(ALERT_TESTS)],
        capture_output=True,
        text=True,
        cwd=ALERT_TESTS.parent,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    assert "SUCCESS" in unit.stdout


def test_alert_rules_use_agreed_metric_names() -> None:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= KNOWN_METRICS, (rule["alert"], names - KNOWN_METRICS)
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_alert_unit_tests_feed_exported_series() -> None:
    """promtool's unit tests construct their input series by name: a name the code never exports
    would let an alert pass its test and never fire in a cluster."""
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    names = {s["series"].split("{")[0].strip() for t in tests for s in t.get("input_series", [])}
    assert names, "no input series found"
    assert names <= KNOWN_METRICS, names - KNOWN_METRICS
