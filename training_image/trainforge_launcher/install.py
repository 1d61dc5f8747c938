"""`python -m trainforge_launcher install DIR`: what the `trainforge-launcher` init container
runs (in the operator's worker image) to put the standalone launcher into the pod's emptyDir.

It copies this package, `trainforge_sdk` (so scripts may import it in any image) and NVML's
pure-Python binding `pynvml` (GPU metrics need only the driver's library, which the NVIDIA
container runtime mounts) into DIR, and writes DIR/__main__.py, so the training container runs
`python3 DIR` with its own interpreter. Byte-compiled caches are left out: the user's Python may
be another version.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

MAIN = '''"""Run by the training container: python3 {dir} (trainforge's standalone launcher)."""
import sys

from trainforge_launcher.launch import main

sys.exit(main())
'''
PACKAGES = ("trainforge_launcher", "trainforge_sdk")
OPTIONAL_MODULES = ("pynvml",)


def _origin(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin) if spec is not None and spec.origin else None


def install(target: Path) -> list[str]:
    """Copy the launcher's files into `target`; return what was installed."""
    target.mkdir(parents=True, exist_ok=True)
    installed = []
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        origin = _origin(name)
        if origin is None:
            raise SystemExit(f"trainforge-launcher install: package {name} is not importable")
        shutil.copytree(origin.parent, target / name, ignore=ignore, dirs_exist_ok=True)
        installed.append(name)
    for name in OPTIONAL_MODULES:
        origin = _origin(name)
        if origin is not None and origin.suffix == ".py":
            shutil.copy2(origin, target / origin.name)
            installed.append(name)
    (target / "__main__.py").write_text(MAIN.format(dir=target))
    return installed


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m trainforge_launcher install DIR", file=sys.stderr)
        return 2
    target = Path(argv[0])
    names = install(target)
    print(f"trainforge-launcher: installed {', '.join(names)} into {target}", flush=True)
    return 0
