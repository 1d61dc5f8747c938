#!/usr/bin/env python3
"""Render the chart's Grafana dashboards to PNG (docs/dashboards/) from real Prometheus data.

Why: a reader of the repository sees what the dashboards show without running Grafana. Each panel
is drawn where its gridPos puts it, from the same PromQL Grafana would run (dashboard variables
and $__rate_interval substituted), with matplotlib.

Data source, by default: a real local-mode run (`trainforge run examples/digits-ddp.yaml --local`,
shortened) scraped by a throw-away Debian Prometheus (tests/chart/live_run.py). With
TRAINFORGE_OPERATOR_METRICS=host:port that Prometheus also scrapes a running operator. Or point
at an existing Prometheus with --prometheus URL --start/--end (unix seconds) --namespace --job.

The Training dashboard is rendered twice: from the digits run (training.png) and from a short
local gpt-fsdp run (training-language-model.png), where the tokens/s panel has data.

Usage: hack/render_dashboards.py [--out docs/dashboards] [--epochs 8] [--lm-steps 40]
       [--prometheus URL ...]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "chart"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from dashboard_queries import expand, iter_panels, load_dashboards  # noqa: E402
from live_run import (  # noqa: E402
    LiveRun,
    language_model_manifest,
    live_training_run,
    operator_target,
)
from matplotlib.figure import Figure  # noqa: E402
from operator_live import SCENARIO_SECONDS, control_plane_missing, live_operator  # noqa: E402
from promfixture import Prometheus  # noqa: E402

GRID_COLUMNS = 24
ROW_HEIGHT_IN = 0.42
WIDTH_IN = 18.0
RATE_INTERVAL = "10s"
BACKGROUND = "#111217"
PANEL_BG = "#181b1f"
TEXT = "#ccccdc"
COLORS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]


class Source:
    """Evaluates PromQL over a fixed window."""

    def __init__(
        self, prom: Prometheus, start: float, end: float, variables: Mapping[str, str]
    ) -> None:
        self.prom, self.start, self.end, self.variables = prom, start, end, dict(variables)
        self.step = max(1.0, (end - start) / 300)

    def series(self, expr: str) -> list[dict[str, Any]]:
        return self.prom.query_range(
            expand(expr, self.variables, RATE_INTERVAL), self.start, self.end, self.step
        )


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    """Grafana's {{label}} legend templating."""
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
    return text or ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"


def scale(unit: str) -> tuple[float, str]:
    """Multiplier and axis label for a Grafana unit."""
    return {
        "percentunit": (100.0, "%"),
        "bytes": (1 / 2**20, "MiB"),
        "s": (1.0, "s"),
        "ops": (1.0, "/s"),
    }.get(unit, (1.0, ""))


def points(values: list[list[Any]], start: float, factor: float) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for ts, raw in values:
        value = float(raw)
        if math.isfinite(value):
            xs.append((float(ts) - start) / 60)
            ys.append(value * factor)
    return xs, ys


def style(ax: Any, title: str) -> None:
    ax.set_facecolor(PANEL_BG)
    ax.set_title(title, color=TEXT, fontsize=10, loc="left")
    ax.tick_params(colors=TEXT, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color("#2c3235")
    ax.grid(color="#2c3235", linewidth=0.5)


def right_axis_series(panel: Mapping[str, Any]) -> dict[str, str]:
    """Series names that Grafana draws on a right-hand axis (field overrides), with their unit."""
    out = {}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        props = {p["id"]: p["value"] for p in override.get("properties", [])}
        if props.get("custom.axisPlacement") == "right":
            out[override["matcher"]["options"]] = props.get("unit", "short")
    return out


def draw_timeseries(ax: Any, panel: Mapping[str, Any], src: Source) -> int:
    """Lines for every series of every target; returns how many series were drawn."""
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    factor, label = scale(unit)
    right = right_axis_series(panel)
    twin = None
    drawn = 0
    for target in panel["targets"]:
        for s in src.series(target["expr"]):
            name = legend(target.get("legendFormat", ""), s["metric"])
            on_right = name in right
            xs, ys = points(s["values"], src.start, scale(right[name])[0] if on_right else factor)
            if not xs:
                continue
            color = COLORS[drawn % len(COLORS)]
            if on_right:
                twin = twin or ax.twinx()
                twin.tick_params(colors=TEXT, labelsize=7)
                twin.plot(xs, ys, color=color, linewidth=1.4, linestyle="--", label=name)
                twin.set_ylabel(f"{name} (dashed)", color=TEXT, fontsize=7)
            else:
                ax.plot(xs, ys, color=color, linewidth=1.4, label=name)
            drawn += 1
    ax.set_xlabel("minutes into the run", color=TEXT, fontsize=7)
    if label:
        ax.set_ylabel(label, color=TEXT, fontsize=7)
    if drawn:
        handles, labels = ax.get_legend_handles_labels()
        if twin is not None:
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        ax.legend(
            handles,
            labels,
            fontsize=6,
            facecolor=PANEL_BG,
            labelcolor=TEXT,
            edgecolor="#2c3235",
            loc="upper left",
        )
    return drawn


def draw_stat(ax: Any, panel: Mapping[str, Any], src: Source) -> int:
    """The last finite value of each target, as big numbers."""
    texts = []
    for target in panel["targets"]:
        for s in src.series(target["expr"]):
            _, ys = points(s["values"], src.start, 1.0)
            if ys:
                name = legend(target.get("legendFormat", ""), s["metric"])
                texts.append((name, ys[-1]))
    ax.set_xticks([])
    ax.set_yticks([])
    for i, (name, value) in enumerate(texts):
        y = 1 - (i + 1) / (len(texts) + 1)
        shown = f"{value * 100:.1f}%" if name == "done" else f"{value:,.4g}"
        ax.text(0.5, y, shown, color=COLORS[i % len(COLORS)], fontsize=20, ha="center", va="center")
        ax.text(0.5, y - 0.16, name, color=TEXT, fontsize=8, ha="center", va="center")
    return len(texts)


def render(dashboard: Mapping[str, Any], src: Source, subtitle: str) -> tuple[Figure, list[str]]:
    """One figure for a dashboard, and the titles of panels that had no data."""
    panels = list(iter_panels(dashboard))
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    height = rows * ROW_HEIGHT_IN + 0.9
    fig = plt.figure(figsize=(WIDTH_IN, height), facecolor=BACKGROUND)
    fig.suptitle(dashboard["title"], color=TEXT, fontsize=15, x=0.01, ha="left", y=0.995)
    fig.text(0.01, 1 - 0.55 / height, subtitle, color="#8e8e8e", fontsize=8)
    top = 1 - 0.9 / height
    empty = []
    for panel in panels:
        g = panel["gridPos"]
        pad_x, pad_y = 0.035, 0.9 / height
        left = g["x"] / GRID_COLUMNS + pad_x / 2
        width = g["w"] / GRID_COLUMNS - pad_x
        h = g["h"] * ROW_HEIGHT_IN / height
        bottom = top - (g["y"] * ROW_HEIGHT_IN / height) - h + pad_y / 2
        ax = fig.add_axes((left, bottom, width, h - pad_y))
        style(ax, panel["title"])
        drawn = draw_stat(ax, panel, src) if panel["type"] == "stat" else None
        if drawn is None:
            drawn = draw_timeseries(ax, panel, src)
        if not drawn:
            empty.append(panel["title"])
            ax.text(0.5, 0.5, "no data", color="#f2495c", ha="center", transform=ax.transAxes)
    return fig, empty


def render_all(sources: Mapping[str, tuple[Source, str]], out: Path) -> int:
    """Render each dashboard with its own (source, subtitle) to <out>/<key>.png, where a key is
    a dashboard name or `<dashboard>-<variant>`; returns the count of empty panels."""
    out.mkdir(parents=True, exist_ok=True)
    dashboards = load_dashboards()
    missing = 0
    for key, (src, subtitle) in sources.items():
        fig, empty = render(dashboards[key.split("-", 1)[0]], src, subtitle)
        path = out / f"{key}.png"
        fig.savefig(path, dpi=90, facecolor=BACKGROUND)
        plt.close(fig)
        note = f"; panels without data: {', '.join(empty)}" if empty else ""
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}{note}")
        missing += len(empty)
    return missing


def render_language_model(workdir: Path, steps: int, out: Path) -> int:
    """The Training dashboard of a short local gpt-fsdp run, where tokens/s has data.
    Returns 1 when the run failed (empty panels are reported, as for the other renders)."""
    with live_training_run(workdir, manifest=language_model_manifest(steps)) as run:
        sources = run_sources(run, "the gpt-fsdp run")
        if sources is None:
            return 1
        src = sources[1]
        note = (
            f"TrainingJob {run.namespace}/{run.job}: local-mode run of examples/gpt-fsdp.yaml "
            f"({steps} steps, FSDP over 2 ranks, CPU/gloo), scraped every 1 s by Prometheus. "
            "A language model, so tokens/s has data. No GPU here: the GPU panels have no data."
        )
        render_all({"training-language-model": (src, note)}, out)
        return 0


def run_sources(run: LiveRun, what: str) -> tuple[Source, Source] | None:
    """(whole window, from the first optimizer step) over a finished local run's Prometheus, or
    None after printing the run's log tail when it failed."""
    if run.exit_code != 0:
        print(run.log[-3000:], file=sys.stderr)
        print(f"{what} failed (exit {run.exit_code}); see above", file=sys.stderr)
        return None
    variables = {"namespace": run.namespace, "job": run.job}
    whole = Source(run.prometheus, run.start, run.end, variables)
    return whole, Source(run.prometheus, training_started(whole), run.end, variables)


def training_started(src: Source) -> float:
    """When the first optimizer step was scraped (start-up before it is idle time on the plot)."""
    found = src.prom.query_range("max(trainforge_train_step) > 0", src.start, src.end, 1.0)
    if not found or not found[0]["values"]:
        return src.start
    return max(src.start, float(found[0]["values"][0][0]) - 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboards")
    parser.add_argument("--epochs", type=int, default=8, help="length of the local run")
    parser.add_argument("--prometheus", help="use this Prometheus instead of a local run")
    parser.add_argument("--start", type=float, help="window start (unix s), with --prometheus")
    parser.add_argument("--end", type=float, help="window end (unix s), default now")
    parser.add_argument(
        "--lm-steps",
        type=int,
        default=40,
        help="also render the Training dashboard of a local gpt-fsdp run this long (0: skip)",
    )
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--job", default="digits-ddp")
    args = parser.parse_args(argv)
    if args.prometheus:
        prom = Prometheus(Path(tempfile.gettempdir()), {})
        prom.port = int(args.prometheus.rsplit(":", 1)[1].rstrip("/"))
        end = args.end or time.time()
        start = args.start or end - 3600
        src = Source(prom, start, end, {"namespace": args.namespace, "job": args.job})
        note = f"{args.namespace}/{args.job} from {args.prometheus}"
        return 1 if render_all({"training": (src, note), "operator": (src, note)}, args.out) else 0
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tf-render-")))
        target = operator_target()
        operator_note = f"operator at {target}" if target else ""
        if target is None:
            why = control_plane_missing()
            if why:
                operator_note = f"no operator ({why})"
            else:
                target = stack.enter_context(live_operator(tmp / "operator"))
                operator_note = (
                    "the operator on the control-plane tier (kube-apiserver + kwok nodes), "
                    "5 TrainingJobs submitted 8 s apart: 2 start, 1 gang too big for its GPU "
                    "pool, 1 unknown node pool, 1 refused by a LimitRange; then a 3-trial "
                    "TrainingSweep"
                )
        extra = {"trainforge-operator": [target]} if target else None
        # Scrape until the operator's whole scenario has been submitted (as the live test does).
        window = SCENARIO_SECONDS + 10 if target else 0.0
        run = stack.enter_context(
            live_training_run(
                tmp / "training", epochs=args.epochs, extra_jobs=extra, min_window_s=window
            )
        )
        sources = run_sources(run, "the local run")
        if sources is None:
            return 1
        whole, training = sources
        minutes = (run.end - training.start) / 60
        training_note = (
            f"TrainingJob {run.namespace}/{run.job}: local-mode run of examples/digits-ddp.yaml "
            f"({args.epochs} epochs, 2 ranks, CPU/gloo, {minutes:.1f} min of training), scraped "
            "every 1 s by Prometheus. No GPU here: the GPU panels have no data. Restarts come from "
            "the operator, which did not run this job."
        )
        operator_note = f"Operator: {operator_note}; scraped every 1 s by Prometheus."
        render_all(
            {"training": (training, training_note), "operator": (whole, operator_note)}, args.out
        )
    if args.lm_steps:
        with tempfile.TemporaryDirectory(prefix="tf-render-lm-") as lm_tmp:
            return render_language_model(Path(lm_tmp), args.lm_steps, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
