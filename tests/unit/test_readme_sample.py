"""The README's `kubectl get tj` sample is printed from the CRD's real additionalPrinterColumns.

`render` lays out a TrainingJob the way kubectl prints a custom resource (priority-0 columns,
upper-case headers, columns padded to the widest cell plus three spaces, `<none>` for a missing
value), so the sample cannot drift from the columns. `--update-goldens` rewrites the block.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .golden import REPO

README = REPO / "README.md"
CRD = REPO / "crds" / "trainingjobs.trainforge.io.yaml"
BLOCK = re.compile(r"(```\n\$ kubectl get tj\n)(.*?)(```)", re.S)

# A running digits-ddp job a minute after it was created.
SAMPLE: dict[str, Any] = {
    "metadata": {"name": "digits-ddp"},
    "spec": {"parallelism": {"layout": "data", "nodes": 2}, "resources": {"gpus": 0}},
    "status": {
        "phase": "Running",
        "currentNodes": 2,
        "restarts": 0,
        "progress": {"step": 240, "metrics": {"loss": 0.142}, "eta": "2m10s"},
        "message": "attempt 0: all workers running",
    },
}
AGE = "1m"


def _lookup(obj: Any, json_path: str) -> Any:
    for part in json_path.lstrip(".").split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def render(columns: list[dict[str, Any]], job: dict[str, Any], age: str) -> str:
    """`kubectl get tj` for one job: NAME, then every priority-0 printer column."""
    shown = [c for c in columns if not c.get("priority")]
    header = ["NAME", *(c["name"].upper() for c in shown)]
    row = [job["metadata"]["name"]]
    for column in shown:
        value = age if column["type"] == "date" else _lookup(job, column["jsonPath"])
        row.append("<none>" if value is None else str(value))
    widths = [max(len(h), len(v)) for h, v in zip(header, row, strict=True)]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()
        for cells in (header, row)
    ]
    return "\n".join(lines) + "\n"


def test_readme_sample_matches_the_printer_columns(update_goldens: bool) -> None:
    crd = yaml.safe_load(CRD.read_text())
    columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    want = render(columns, SAMPLE, AGE)
    text = README.read_text()
    match = BLOCK.search(text)
    assert match, "README.md has no ```\\n$ kubectl get tj block"
    if update_goldens:
        README.write_text(text[: match.start(2)] + want + text[match.end(2) :])
        return
    assert match.group(2) == want, (
        "README.md's `kubectl get tj` sample differs from the CRD's printer columns; rewrite it "
        "with `.venv/bin/python -m pytest tests/unit/test_readme_sample.py --update-goldens`"
    )
