"""What the schedule reads and writes in object storage, through fsspec: the data's fingerprint
and the champion pointer.

The operator uses its own credentials (the standard AWS_* / GOOGLE_* environment of its pod, which
the chart fills from the Secret named by `operator.storageCredentialsSecret`) and never reads
the Secrets of a run, so it needs no RBAC on Secrets; the S3 endpoint is the one the job template
names (`data.s3Endpoint`, else `artifacts.s3Endpoint`). A fingerprint is short and stable: the
same data gives the same string, and any added, removed or rewritten object changes it.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from trainforge_api.trainingschedule import FingerprintBy
from trainforge_operator.objectstore import open_fs as _open
from trainforge_operator.objectstore import write_bytes


class DataError(Exception):
    """The data could not be fingerprinted; the message says what to fix."""


def _stamp(info: dict[str, Any], by: FingerprintBy, uri: str) -> str:
    if by == "etag":
        value = info.get("ETag") or info.get("etag") or info.get("md5Hash")
        if value is None:
            raise DataError(
                f"spec.newData.by: etag, but {uri} has no ETags (file:// has none); "
                "use by: mtime or by: manifest"
            )
        return str(value).strip('"')
    value = info.get("mtime") or info.get("LastModified") or info.get("updated")
    if value is None:
        raise DataError(f"spec.newData.by: mtime, but {uri} reports no modification times")
    return str(value)


def _manifest(fs: Any, root: str, uri: str, manifest_path: str) -> bytes:
    path = posixpath.join(root, manifest_path)
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError as err:
        raise DataError(
            f"spec.newData.by: manifest, but {uri.rstrip('/')}/{manifest_path} does not exist; "
            "the data's producer writes it after a complete drop (or use by: etag or mtime)"
        ) from err


def fingerprint(
    uri: str, by: FingerprintBy, manifest_path: str = "manifest.json", endpoint: str | None = None
) -> str:
    """`<by>:<16 hex>` over every object under `uri` (path, size and ETag or mtime), or over the
    bytes of the manifest. Raises DataError with the reason."""
    try:
        fs, root = _open(uri, endpoint)
        if by == "manifest":
            data = _manifest(fs, root, uri, manifest_path)
            return f"manifest:{hashlib.sha256(data).hexdigest()[:16]}"
        fs.invalidate_cache()
        infos = fs.find(root, detail=True) if fs.isdir(root) else {root: fs.info(root)}
        if not infos:
            raise DataError(f"no data under {uri} yet: write the first objects there")
        lines = sorted(
            f"{posixpath.relpath(path, root)}\t{info.get('size')}\t{_stamp(info, by, uri)}"
            for path, info in infos.items()
        )
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{uri}: not found ({err}); create it or fix jobTemplate.data.uri") from err
    except Exception as err:  # fsspec backends raise their own types; the reason is what matters
        raise DataError(f"cannot read {uri}: {type(err).__name__}: {err}") from err
    return f"{by}:{hashlib.sha256(chr(10).join(lines).encode()).hexdigest()[:16]}"


def write_pointer(uri: str, content: dict[str, Any], endpoint: str | None = None) -> None:
    """Write the champion pointer so that a reader sees the old one or the new one, never half:
    a local file is written beside and renamed; an object store PUT is atomic by itself."""
    data = (json.dumps(content, indent=2, sort_keys=True) + "\n").encode()
    write_bytes(uri, data, endpoint)
