"""A single self-contained HTML training report: curves, confusion matrix, profile, findings.

Plots are rendered with matplotlib (Agg, no display) and embedded as base64 PNGs, so the page
works when opened from an artifact bucket with no other files next to it.

`history` maps a metric name to its series: a list of values (x = index) or of (step, value)
pairs. Names containing "loss" share the loss plot, names containing "acc" the accuracy plot;
anything else gets its own small plot.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Series = Sequence[float] | Sequence[tuple[float, float]] | Sequence[Sequence[float]]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{margin-bottom:0} .sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;font-size:13px} th{background:#f3f3f3} img{max-width:100%}
.stop{color:#b00;font-weight:bold} .warn{color:#a60}
pre{background:#f7f7f7;padding:8px;overflow:auto}
"""


def _xy(series: Series) -> tuple[list[float], list[float]]:
    values = list(series)
    if values and isinstance(values[0], (tuple, list)):
        return [float(p[0]) for p in values], [float(p[1]) for p in values]  # type: ignore[index]
    return list(map(float, range(len(values)))), [float(v) for v in values]  # type: ignore[arg-type]


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _line_plot(title: str, series: Mapping[str, Series], ylabel: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, values in series.items():
        xs, ys = _xy(values)
        finite = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        if finite:
            ax.plot(
                *zip(*finite, strict=True), label=name, marker="." if len(finite) < 60 else None
            )
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    else:  # every value was NaN or infinite: say so rather than draw an empty chart
        ax.text(0.5, 0.5, "no finite values to plot", ha="center", transform=ax.transAxes)
    return _img(_png(fig), title)


def _confusion_plot(matrix: Any, class_names: Sequence[str] | None) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.asarray(matrix)
    n = cm.shape[0]
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.55 * n + 2))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax)
    ax.set_xticks(range(n), names, rotation=45)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            color = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, f"{cm[i, j]:g}", ha="center", va="center", color=color, fontsize=8)
    ax.set_title("confusion matrix")
    return _img(_png(fig), "confusion matrix")


def _versus_plot(scores: Mapping[str, float], champion: Mapping[str, float] | None) -> str | None:
    """One bar group per metric that has a baseline: model, baseline and (when a schedule
    passed it) the current champion. None when no metric has a baseline."""
    import matplotlib.pyplot as plt

    metrics = sorted(k for k in scores if f"baseline_{k}" in scores and math.isfinite(scores[k]))
    if not metrics:
        return None
    rows = [("model", scores), ("baseline", {k: scores[f"baseline_{k}"] for k in metrics})]
    if champion:
        rows.append(("champion", champion))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1, 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        names = [n for n, values in rows if metric in values]
        heights = [float(values[metric]) for _, values in rows if metric in values]
        bars = ax.bar(names, heights, color=["#1f77b4", "#999999", "#2ca02c"][: len(names)])
        ax.bar_label(bars, fmt="%.4g", fontsize=8)
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("model vs baseline" + (" vs champion" if champion else ""))
    return _img(_png(fig), "model vs baseline")


def _phase_plot(phases: Mapping[str, float]) -> str:
    import matplotlib.pyplot as plt

    names = [k for k in ("data_loading", "communication", "compute") if k in phases]
    fig, ax = plt.subplots(figsize=(6, 2.2))
    ax.barh(
        names, [phases[k] for k in names], color=["#e69f00", "#56b4e9", "#009e73"][: len(names)]
    )
    ax.set_xlabel("ms over profiled steps")
    ax.set_title("where step time went")
    return _img(_png(fig), "profile phases")


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _kv_table(data: Mapping[str, Any]) -> str:
    rows = []
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(text)}</td></tr>")
    return f"<table>{''.join(rows)}</table>"


def _curves(history: Mapping[str, Series]) -> list[str]:
    groups: dict[str, dict[str, Series]] = {"loss": {}, "accuracy": {}}
    others: dict[str, Series] = {}
    for name, series in history.items():
        if not series:
            continue
        if "loss" in name:
            groups["loss"][name] = series
        elif "acc" in name:
            groups["accuracy"][name] = series
        else:
            others[name] = series
    parts = [_line_plot(title, s, title) for title, s in groups.items() if s]
    parts += [_line_plot(name, {name: s}, name) for name, s in others.items()]
    return parts


def _findings_html(findings: Sequence[Any]) -> str:
    rows = [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in findings]
    if not rows:
        return "<p>No health rule fired.</p>"
    out = _table(rows, ["rule", "step", "action", "message"])
    return out.replace("<td>stop</td>", '<td class="stop">stop</td>').replace(
        "<td>warn</td>", '<td class="warn">warn</td>'
    )


def _profile_html(summary: Mapping[str, Any]) -> str:
    parts = []
    if summary.get("phases_ms"):
        parts.append(_phase_plot(summary["phases_ms"]))
        parts.append(_kv_table(summary["phases_ms"]))
    if summary.get("top_operators"):
        parts.append(
            _table(summary["top_operators"], ["name", "calls", "self_cpu_ms", "cpu_total_ms"])
        )
    return "".join(parts) or f"<pre>{html.escape(json.dumps(summary, indent=2))}</pre>"


def render_report(
    out_path: str | Path,
    history: Mapping[str, Series],
    confusion_matrix: Any = None,
    profile_summary: Mapping[str, Any] | None = None,
    findings: Sequence[Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    title: str = "trainforge training report",
    class_names: Sequence[str] | None = None,
    scores: Mapping[str, float] | None = None,
    champion: Mapping[str, float] | None = None,
) -> Path:
    """Write the report to `out_path` and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    sections = [f"<h1>{html.escape(title)}</h1><p class='sub'>generated {now}</p>"]
    if metadata:
        sections.append("<h2>Run</h2>" + _kv_table(metadata))
    curves = _curves(history)
    sections.append("<h2>Curves</h2>" + ("".join(curves) or "<p>No metrics recorded.</p>"))
    versus = _versus_plot(scores or {}, champion)
    if versus is not None:
        sections.append("<h2>Model vs baseline</h2>" + versus)
    if confusion_matrix is not None:
        sections.append(
            "<h2>Confusion matrix</h2>" + _confusion_plot(confusion_matrix, class_names)
        )
    if profile_summary:
        sections.append("<h2>Profile</h2>" + _profile_html(profile_summary))
    sections.append("<h2>Health findings</h2>" + _findings_html(findings or []))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
