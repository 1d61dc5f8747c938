"""The sweep report page: every figure drawn from a rebuilt study, pruned trials marked."""

from __future__ import annotations

from trainforge_sweep import report
from trainforge_sweep.trials import TrialRecord

from .test_engine import history, spec_of


def test_the_report_draws_every_figure_and_marks_pruned_trials() -> None:
    spec = spec_of(algorithm={"type": "random"})
    records = history(spec, 5)
    records.append(TrialRecord(5, "s-5", records[0].params, "Pruned", None, {10: 0.1}))
    page = report.render(spec, "s", records)
    for title in (
        "Optimisation history",
        "Parallel coordinates",
        "Parameter importance",
        "Intermediate values",
        "Trials",
    ):
        assert f"<h2>{title}" in page
    assert "not drawn yet" not in page
    assert "(pruned)" in page
    assert page.count("<tr>") == 1 + len(records)


def test_a_report_before_any_trial_finished_is_still_a_page() -> None:
    page = report.render(spec_of(), "s", [])
    assert "0/6 finished" in page
    assert page.endswith("</html>")
