#!/usr/bin/env python3
"""Generate the TrainingJob CRD from the pydantic models (the single source of truth).

Writes `crds/trainingjobs.trainforge.io.yaml`, the chart's identical copy under
`charts/trainforge/files/crds/` (rendered by a chart template, so `crds.enabled` governs it),
and the generated field tables in `docs/api-reference.md`.
`make verify` regenerates and fails on drift, so edit the models in
`api/trainforge_api/trainingjob.py` (or the rules in `api/trainforge_api/rules.py`), never the YAML.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "api"), str(ROOT / "operator"), str(ROOT / "training_image")]

from trainforge_operator.crd import build_crd, render_yaml, update_reference  # noqa: E402
from trainforge_operator.schedule_crd import build_schedule_crd  # noqa: E402
from trainforge_operator.sweepcrd import build_sweep_crd  # noqa: E402

OUTPUTS = [
    ROOT / "crds" / "trainingjobs.trainforge.io.yaml",
    ROOT / "charts" / "trainforge" / "files" / "crds" / "trainingjobs.trainforge.io.yaml",
]


SWEEP_OUTPUTS = [
    ROOT / "crds" / "trainingsweeps.trainforge.io.yaml",
    ROOT / "charts" / "trainforge" / "files" / "crds" / "trainingsweeps.trainforge.io.yaml",
]

REFERENCE = ROOT / "docs" / "api-reference.md"

SCHEDULE_OUTPUTS = [
    ROOT / "crds" / "trainingschedules.trainforge.io.yaml",
    ROOT / "charts" / "trainforge" / "files" / "crds" / "trainingschedules.trainforge.io.yaml",
]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    crd = build_crd()
    text = render_yaml(crd)
    for path in OUTPUTS:
        _write(path, text)
    sweep = render_yaml(build_sweep_crd())
    for path in SWEEP_OUTPUTS:
        _write(path, sweep)
    old = REFERENCE.read_text() if REFERENCE.exists() else "# TrainingJob API reference\n"
    reference = update_reference(old, crd)
    reference = update_reference(reference, build_sweep_crd(), templates=["trialTemplate"])
    reference = update_reference(reference, build_schedule_crd(), templates=["jobTemplate"])
    _write(REFERENCE, reference)
    schedule_text = render_yaml(build_schedule_crd())
    for path in SCHEDULE_OUTPUTS:
        _write(path, schedule_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
