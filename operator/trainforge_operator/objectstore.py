"""Object storage through fsspec, for what the operator itself writes (the schedule's champion
pointer, the sweep report) and reads (the schedule's data fingerprints).

The operator uses its own credentials (the standard AWS_* / GOOGLE_* environment of its pod,
filled from the Secret named by the chart's `operator.storageCredentialsSecret`) and never reads
the Secrets of a job; the S3 endpoint is the one the job template names.
"""

from __future__ import annotations

import posixpath
import uuid
from typing import Any

import fsspec


def open_fs(uri: str, endpoint: str | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of `uri` (with the S3 endpoint for s3://) and the path in it."""
    options: dict[str, Any] = {}
    if endpoint and uri.startswith(("s3://", "s3a://")):
        options["client_kwargs"] = {"endpoint_url": endpoint}
    fs, path = fsspec.core.url_to_fs(uri, **options)
    return fs, str(path)


def write_bytes(uri: str, data: bytes, endpoint: str | None = None) -> None:
    """Write `data` at `uri` so that a reader sees the old object or the new one, never half: a
    local file is written beside and renamed; an object store PUT is atomic by itself."""
    fs, path = open_fs(uri, endpoint)
    if "file" in fs.protocol or "local" in fs.protocol:
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)
