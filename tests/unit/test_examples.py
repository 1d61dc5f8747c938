"""The shipped examples are valid TrainingJobs, and the plain one runs on any cluster: it needs
no object storage, no Secret and no add-on, and it bounds how long it may wait for its gang.
(tests/runtime/test_local_mode.py and the e2e tier run the jobs themselves.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from trainforge_api import trainingschedule, trainingsweep
from trainforge_api.context import parse_spec
from trainforge_api.schedule_rules import schedule_problems
from trainforge_api.sweeprules import sweep_problems

from .golden import REPO

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid_for_its_kind(path: Path) -> None:
    """TrainingJobs parse; sweeps and schedules pass their own rules (and so their templates)."""
    obj = yaml.safe_load(path.read_text())
    if obj["kind"] == trainingsweep.KIND:
        assert sweep_problems(trainingsweep.TrainingSweepSpec.model_validate(obj["spec"])) == []
    elif obj["kind"] == trainingschedule.KIND:
        spec = trainingschedule.TrainingScheduleSpec.model_validate(obj["spec"])
        assert schedule_problems(spec, obj["metadata"]["name"]) == []
    else:
        assert obj["kind"] == "TrainingJob"
        parse_spec(obj)


def test_the_plain_example_needs_nothing_but_the_operator() -> None:
    text = (REPO / "examples" / "plain-ddp.yaml").read_text()
    spec = parse_spec(yaml.safe_load(text))
    dumped = json.dumps(spec.model_dump(mode="json", by_alias=True))
    assert "s3://" not in dumped
    assert "secretKeyRef" not in dumped
    assert spec.artifacts.credentials_secret is None
    assert spec.checkpoint.uri is None
    assert spec.image is None  # the operator's default worker image, wherever it was pushed
    assert spec.run_policy.max_pending_seconds is not None
    assert "trainforge" not in spec.args[0]  # a plain script: no trainforge import


def test_the_demo_example_says_it_needs_the_demo_add_ons() -> None:
    header = (REPO / "examples" / "digits-ddp.yaml").read_text().split("apiVersion")[0]
    assert "needs the demo's add-ons" in header
    assert "plain-ddp.yaml" in header
