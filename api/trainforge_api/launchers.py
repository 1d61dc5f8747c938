"""Which launcher starts a worker pod's ranks: `spec.launcher` resolved (docs/byo-code.md).

* `runtime`: `python -m trainforge_runtime.launch` from the image; the image must contain
  trainforge's runtime (the operator's worker image, or an image built on it). trainforge's own
  trainers (`python -m trainforge_runtime.trainers.<name>`) need it.
* `standalone`: the pod's `trainforge-launcher` init container (the operator's worker image) copies
  `trainforge_launcher` (standard library only, Python 3.9+) into an emptyDir at BOOT_DIR, and the
  training container runs it with the image's own `python3`. Any image with Python and torch works.
* `auto` (the default): `runtime` when the job runs the operator's worker image (spec.image unset or
  equal to it) or one of trainforge's own modules, else `standalone`.

Both the operator (builders.py) and local mode (`trainforge run --local`) resolve it here, so a job
starts the same way on a cluster and on a laptop.
"""

from __future__ import annotations

from typing import Literal

from trainforge_api.trainingjob import TrainingJobSpec

Resolved = Literal["runtime", "standalone"]
RUNTIME_MODULE_PREFIX = "trainforge_runtime"
RUNTIME_COMMAND = ["python", "-m", "trainforge_runtime.launch"]
BOOT_DIR = "/var/trainforge/launcher"  # trainforge_launcher.BOOT_DIR
# `python3 DIR` runs DIR/__main__.py, written by trainforge_launcher.install
STANDALONE_COMMAND = ["python3", BOOT_DIR]
INSTALL_COMMAND = ["python", "-m", "trainforge_launcher", "install", BOOT_DIR]


def runs_trainforge_module(argv: list[str]) -> bool:
    """`python [opt] -m trainforge_runtime...`: one of trainforge's own trainers or tools."""
    return any(
        len(argv) > i + 1 and argv[i] == "-m" and argv[i + 1].startswith(RUNTIME_MODULE_PREFIX)
        for i in (1, 2)
    )


def resolve_launcher(spec: TrainingJobSpec, default_image: str) -> Resolved:
    """`spec.launcher` with `auto` decided (see the module docstring)."""
    if spec.launcher != "auto":
        return spec.launcher
    if not spec.image or spec.image == default_image:
        return "runtime"
    return "runtime" if runs_trainforge_module([*spec.command, *spec.args]) else "standalone"
