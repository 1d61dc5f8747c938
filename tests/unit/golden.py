"""Golden files: whole built objects compared with reviewed YAML under tests/unit/golden/.

`--update-goldens` (tests/conftest.py) rewrites them from the code; review the diff before
committing, since a golden is only as good as that review.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml

GOLDEN_DIR = Path(__file__).parent / "golden"
REPO = Path(__file__).resolve().parents[2]
HEADER = (
    "# Generated from the code by `pytest tests/unit --update-goldens`; do not edit by hand.\n"
    "# Review every change: a golden is only as good as its review.\n"
)


class _Dumper(yaml.SafeDumper):
    """Sorted keys, no line folding, multi-line strings (the context JSON) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=1000)


def _key(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def assert_golden(name: str, objects: list[dict[str, Any]], update: bool) -> None:
    """Compare every object with `golden/<name>.yaml` (one YAML document per object, in order)."""
    path = GOLDEN_DIR / f"{name}.yaml"
    rel = path.relative_to(REPO)
    rewrite = (
        f".venv/bin/python -m pytest {Path(__file__).parent.relative_to(REPO)} --update-goldens"
    )
    if update:
        path.parent.mkdir(exist_ok=True)
        path.write_text(HEADER + "---\n".join(dump(o) for o in objects))
        return
    if not path.exists():
        pytest.fail(f"{rel} is missing: write it with `{rewrite}` and review it", pytrace=False)
    golden = [o for o in yaml.safe_load_all(path.read_text()) if o is not None]
    want = {_key(o): dump(o) for o in golden}
    got = {_key(o): dump(o) for o in objects}
    problems: list[str] = []
    if list(want) != list(got):
        problems.append(f"objects (in order): golden {list(want)}, built {list(got)}")
    for key in dict.fromkeys([*want, *got]):
        a, b = want.get(key, ""), got.get(key, "")
        if a != b:
            diff = difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"{rel} {key}",
                tofile=f"built {key}",
            )
            problems.append("".join(diff))
    if problems:
        pytest.fail(
            f"{rel}: the builders' objects differ from the golden file\n\n"
            + "\n".join(problems)
            + f"\nIf the change is intended, rewrite the goldens with `{rewrite}` "
            "and review the git diff.",
            pytrace=False,
        )
