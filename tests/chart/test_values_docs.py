"""values.yaml is documented helm-docs style: every key has a `# --` comment or sits under one."""

from __future__ import annotations

import re

from helmrender import CHART

KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[\w.-]+):")


def undocumented(text: str) -> list[str]:
    """Dotted paths of keys with no `# --` comment on themselves or on any parent key."""
    missing: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    pending = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = True
            continue
        if stripped.startswith("#") or not stripped or stripped.startswith("-"):
            continue
        match = KEY.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = pending or any(doc for _, _, doc in stack)
        path = ".".join([k for _, k, _ in stack] + [match["key"]])
        stack.append((indent, match["key"], pending))
        pending = False
        is_section = line.rstrip().endswith(":")
        if not documented and not is_section:
            missing.append(path)
    return missing


def test_every_value_is_documented() -> None:
    assert undocumented((CHART / "values.yaml").read_text()) == []


def test_checker_finds_an_undocumented_key() -> None:
    text = "# -- documented\na: 1\nsection:\n  # -- fine\n  b: 2\n  c: 3\n"
    assert undocumented(text) == ["section.c"]
