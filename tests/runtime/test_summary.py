"""The per-rank summary: built from a rank's state, written by the worker, read back by the launcher
and encoded into the termination message with the keys trainforge_api.termination defines."""

from __future__ import annotations

import json
import math
from pathlib import Path

from trainforge_api.termination import MAX_MESSAGE_CHARS, decode, encode, rank_summary
from trainforge_api.trainingjob import ArtifactSummary
from trainforge_runtime.progress import ProgressTracker
from trainforge_runtime.summary import (
    clear_summaries,
    read_first_summary,
    summarize,
    write_summary,
)


def test_rank_summary_leaves_out_unknowns_and_caps_the_message() -> None:
    summary = rank_summary("UserError", message="x" * (MAX_MESSAGE_CHARS + 100))
    assert summary == {
        "exitReason": "UserError",
        "step": None,
        "metrics": {},
        "findings": [],
        "message": "x" * MAX_MESSAGE_CHARS,
    }


def test_rank0_summary_falls_back_to_reported_metrics_and_progress() -> None:
    progress = ProgressTracker(total_steps=10)
    progress.update(4, {"loss": 0.5})
    progress.resumed_from_step = 2
    summary = summarize("Terminated", 4, {}, [], progress)
    assert summary["metrics"] == {"loss": 0.5}
    assert (summary["totalSteps"], summary["resumedFromStep"]) == (10, 2)
    other_rank = summarize("Terminated", 4, {}, [], None)
    assert "totalSteps" not in other_rank
    assert other_rank["metrics"] == {}


def test_summary_file_reaches_the_termination_message(tmp_path: Path) -> None:
    artifacts = ArtifactSummary(uri="s3://b/ns/job/", files=3, bytes=120)
    final = {"test_accuracy": 0.9, "loss": math.nan}
    summary = summarize("Succeeded", 7, final, [], None, artifacts)
    write_summary(tmp_path, 1, summary)
    assert read_first_summary(tmp_path, range(0, 2)) == json.loads(
        (tmp_path / "summary-rank1.json").read_text()
    )
    message = decode(encode(read_first_summary(tmp_path, range(0, 2)), 0))
    assert message["exitReason"] == "Succeeded"
    assert message["step"] == 7
    assert message["metrics"] == {"test_accuracy": 0.9, "loss": None}
    assert message["artifacts"] == {"uri": "s3://b/ns/job/", "files": 3, "bytes": 120}
    clear_summaries(tmp_path)
    assert read_first_summary(tmp_path, range(0, 2)) == {}
