"""The sweep report: one self-contained HTML page of Optuna's plotly figures and the trial table.

Figures: the optimisation history with the best value so far, parallel coordinates, parameter
importance, intermediate values (pruned trials drawn dashed and named "pruned"), and the table of
trials. Built from the same rebuilt study as every decision, so the report shows what the sweep
decided from. A figure Optuna cannot draw yet (too few finished trials) is replaced by a note.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from typing import Any

import optuna
import optuna.visualization as vis

from trainforge_api.trainingsweep import TrainingSweepSpec
from trainforge_sweep import outcome, study
from trainforge_sweep.trials import TrialRecord

log = logging.getLogger(__name__)
Figure = Any  # plotly.graph_objects.Figure (plotly ships no type information)


def _intermediate(built: optuna.Study, pruned: set[int]) -> Figure:
    fig = vis.plot_intermediate_values(built)
    for trace in fig.data:
        digits = re.search(r"(\d+)$", str(trace.name or ""))
        if digits is not None and int(digits.group(1)) in pruned:
            trace.name = f"{trace.name} (pruned)"
            trace.line = {"dash": "dash"}
    return fig


def _table(spec: TrainingSweepSpec, records: list[TrialRecord]) -> str:
    names = [p.name for p in spec.parameters]
    metrics = [o.metric for o in spec.objectives]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["trial", "state", *metrics, *names])
    rows = []
    for r in sorted(records, key=lambda r: r.number):
        values = [f"{v:.6g}" for v in (r.values or [])] or [""] * len(metrics)
        params = [html.escape(str(r.params.get(n, ""))) for n in names]
        cells = [html.escape(r.name), r.state, *values, *params]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figures(
    spec: TrainingSweepSpec, built: optuna.Study, pruned: set[int]
) -> list[tuple[str, Callable[[], Figure]]]:
    target = None if not spec.multi_objective else (lambda t: t.values[0])
    name = spec.objective.metric
    figures: list[tuple[str, Callable[[], Figure]]] = [
        (
            "Optimisation history (with the best value so far)",
            lambda: vis.plot_optimization_history(built, target=target, target_name=name),
        ),
        (
            "Parallel coordinates",
            lambda: vis.plot_parallel_coordinate(built, target=target, target_name=name),
        ),
        (
            "Parameter importance",
            lambda: vis.plot_param_importances(built, target=target, target_name=name),
        ),
        ("Intermediate values (pruned trials dashed)", lambda: _intermediate(built, pruned)),
    ]
    if spec.multi_objective:
        figures.append(
            (
                "Pareto front",
                lambda: vis.plot_pareto_front(
                    built, target_names=[o.metric for o in spec.objectives]
                ),
            )
        )
    return figures


def render(spec: TrainingSweepSpec, name: str, records: list[TrialRecord]) -> str:
    """The report page of sweep `name` from its trial records."""
    built, index = study.rebuild(spec, name, records)
    by_index = {i: n for n, i in index.items()}
    pruned = {
        i
        for i, n in by_index.items()
        if any(r.number == n and r.state == "Pruned" for r in records)
    }
    parts: list[str] = []
    first = True
    for title, make in _figures(spec, built, pruned):
        try:
            fig = make()
            body = fig.to_html(full_html=False, include_plotlyjs=first)
            first = False
        except (ValueError, RuntimeError, ImportError, ZeroDivisionError) as err:
            body = f"<p class='note'>not drawn yet: {html.escape(str(err))}</p>"
        parts.append(f"<h2>{html.escape(title)}</h2>{body}")
    c = outcome.counts(spec, records)
    board = outcome.leaderboard(spec, records, built, index)
    best = (
        f"best: {html.escape(board[0].name)} {spec.objective.metric}={board[0].value:.6g}"
        if board and board[0].value is not None and not spec.multi_objective
        else ""
    )
    summary = (
        f"{c.done} finished ({c.succeeded} succeeded, {c.pruned} pruned, {c.failed} failed, "
        f"{c.stopped} stopped when the sweep ended), "
        f"algorithm {spec.algorithm.type}, early stopping {spec.early_stopping.type}. {best}"
    )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}.note{color:#777}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Sweep {html.escape(name)}"
        f"</title><style>{style}</style></head><body><h1>TrainingSweep {html.escape(name)}</h1>"
        f"<p>{html.escape(summary)}</p>{''.join(parts)}<h2>Trials</h2>{_table(spec, records)}"
        "</body></html>"
    )
