"""The "retraining is stale" threshold is the chart value `prometheusRule.retrainingStaleSeconds`:
the PrometheusRule rendered with a one-hour threshold is unit-tested with promtool, so the value
really reaches the rule Prometheus evaluates. The schedules' storage Secret is mounted as env."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from helmrender import MONITORING_API, of_kind, one, render

PROMTOOL = shutil.which("promtool")
ALERT = "TrainforgeRetrainingStale"
DESCRIPTION = (
    "No run of the TrainingSchedule ml/hourly has succeeded for 1h 40m 0s, so its champion "
    "model is getting old. `kubectl describe tsc hourly -n ml` shows its Events (RunFailed, "
    "RunSkipped, InvalidSpec) and status.runs."
)


def stale_rule(docs: list[dict[str, Any]]) -> dict[str, Any]:
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == ALERT]
    return dict(rule)


def test_default_threshold_is_three_days(helm: str) -> None:
    rule = stale_rule(render(helm, api_versions=[MONITORING_API]))
    assert rule["expr"].endswith("> 259200"), rule["expr"]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool missing: apt-get install prometheus")
def test_rendered_threshold_is_what_fires(helm: str, tmp_path: Path) -> None:
    docs = render(
        helm,
        api_versions=[MONITORING_API],
        sets=["prometheusRule.retrainingStaleSeconds=3600"],
    )
    assert stale_rule(docs)["expr"].endswith("> 3600")
    groups = one(docs, "PrometheusRule")["spec"]["groups"]
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump({"groups": groups}))
    series = "trainforge_schedule_seconds_since_last_success"
    tests = {
        "rule_files": ["rendered.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # 50 min since the last success at the start: over an hour after 10 min.
                    {
                        "series": f'{series}{{namespace="ml",schedule="hourly"}}',
                        "values": "3000+60x120",
                    },
                    {
                        "series": f'{series}{{namespace="ml",schedule="fresh"}}',
                        "values": "60+0x120",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": ALERT, "exp_alerts": []},
                    {
                        "eval_time": "50m",
                        "alertname": ALERT,
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "namespace": "ml",
                                    "schedule": "hourly",
                                },
                                "exp_annotations": {
                                    "summary": "Retraining of ml/hourly is stale",
                                    "description": DESCRIPTION,
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    (tmp_path / "stale.test.yaml").write_text(yaml.safe_dump(tests))
    assert PROMTOOL is not None
    unit = subprocess.run(
        [PROMTOOL, "test", "rules", "stale.test.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
    # At the default (3 days) the same series never fire: the value is what decides.
    default = render(helm, api_versions=[MONITORING_API])
    groups = one(default, "PrometheusRule")["spec"]["groups"]
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump({"groups": groups}))
    unit = subprocess.run(
        [PROMTOOL, "test", "rules", "stale.test.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert unit.returncode != 0, unit.stdout


def test_storage_secret_becomes_the_operators_env_without_secret_rbac(helm: str) -> None:
    docs = render(helm, sets=["operator.storageCredentialsSecret=minio-root"])
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "minio-root"}}]
    for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"], role["metadata"]["name"]
    plain = one(render(helm), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in plain
