"""Extract the PromQL of the chart's Grafana dashboards and make it evaluable outside Grafana.

Shared by the static dashboard test, the live test against a real Prometheus and
hack/render_dashboards.py, so all three read the dashboards the same way.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# tests/ holds metric_names; pytest puts it on sys.path, hack/render_dashboards.py does not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from metric_names import (
    OPERATOR_HISTOGRAMS,
    OPERATOR_METRICS,
    WORKER_HISTOGRAMS,
    WORKER_METRICS,
    histogram_series,
)

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "charts" / "trainforge" / "dashboards"

# The metric names come from the code that exports them (tests/metric_names.py); dashboards and
# alerts may use nothing else.
WORKER_SIDE = WORKER_METRICS | histogram_series(WORKER_HISTOGRAMS)
OPERATOR_SIDE = OPERATOR_METRICS | histogram_series(OPERATOR_HISTOGRAMS) | {"up"}
KNOWN_METRICS = WORKER_SIDE | OPERATOR_SIDE
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "datasource"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
KEYWORDS |= {"unless", "bool", "offset", "inf", "nan"}


@dataclass(frozen=True)
class Query:
    """One panel target: where it is and its PromQL."""

    dashboard: str
    panel: str
    ref_id: str
    legend: str
    expr: str

    @property
    def label(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """Dashboard file stem → parsed JSON."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))}


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboards: Mapping[str, Mapping[str, Any]]) -> list[Query]:
    """Every non-hidden target of every panel."""
    found = []
    for name, dash in dashboards.items():
        for panel in iter_panels(dash):
            for target in panel.get("targets", []):
                if target.get("hide"):
                    continue
                found.append(
                    Query(
                        name,
                        panel.get("title", "?"),
                        target.get("refId", "?"),
                        target.get("legendFormat", ""),
                        target.get("expr", ""),
                    )
                )
    return found


def variables_used(expr: str) -> set[str]:
    """Grafana variables referenced as $name or ${name}."""
    return set(re.findall(r"\$\{?(\w+)\}?", expr))


def expand(expr: str, variables: Mapping[str, str], rate_interval: str = "1m") -> str:
    """Substitute Grafana variables so Prometheus can evaluate the expression."""
    values = {"__rate_interval": rate_interval, "__interval": rate_interval, **variables}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, labels, keywords removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range / subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(\s*\()?", text):
        word, is_call = match.group(1), match.group(2)
        if is_call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def source(query: Query) -> str:
    """Who exports what a query reads: "worker", "operator", or "mixed" (never evaluable)."""
    names = metric_names(query.expr)
    if names and names <= WORKER_SIDE:
        return "worker"
    if names and names <= OPERATOR_SIDE:
        return "operator"
    return "mixed"
