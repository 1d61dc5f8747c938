"""Data fingerprints and the champion pointer on a local (file://) filesystem through fsspec."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from trainforge_operator.schedules.storage import DataError, fingerprint, write_pointer


def test_mtime_fingerprint_changes_with_a_new_object_only(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("1\n")
    first = fingerprint(tmp_path.as_uri(), "mtime")
    assert first.startswith("mtime:")
    assert fingerprint(tmp_path.as_uri(), "mtime") == first
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_text("2\n")
    assert fingerprint(tmp_path.as_uri(), "mtime") != first


def test_manifest_fingerprint_is_the_manifest_bytes(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"files": 1}')
    first = fingerprint(tmp_path.as_uri(), "manifest")
    (tmp_path / "data.csv").write_text("ignored until the manifest changes")
    assert fingerprint(tmp_path.as_uri(), "manifest") == first
    (tmp_path / "manifest.json").write_text('{"files": 2}')
    assert fingerprint(tmp_path.as_uri(), "manifest") != first


@pytest.mark.parametrize(
    ("by", "make", "fragment"),
    [
        ("etag", True, "(file:// has none); use by: mtime or by: manifest"),
        ("mtime", False, "not found"),
        ("manifest", True, "manifest.json does not exist; the data's producer writes it"),
    ],
)
def test_fingerprint_errors_say_what_to_do(
    tmp_path: Path, by: str, make: bool, fragment: str
) -> None:
    data = tmp_path / "data"
    if make:
        data.mkdir()
        (data / "x.csv").write_text("1\n")
    with pytest.raises(DataError, match=re.escape(fragment)):
        fingerprint(data.as_uri(), by)  # type: ignore[arg-type]


def test_pointer_is_replaced_whole(tmp_path: Path) -> None:
    uri = (tmp_path / "ml" / "nightly" / "champion.json").as_uri()
    write_pointer(uri, {"run": "a"})
    write_pointer(uri, {"run": "b"})
    target = tmp_path / "ml" / "nightly"
    assert json.loads((target / "champion.json").read_text()) == {"run": "b"}
    assert [p.name for p in target.iterdir()] == ["champion.json"]  # no temporary files left
