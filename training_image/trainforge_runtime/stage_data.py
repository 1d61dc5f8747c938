"""The dataset initializer: `python -m trainforge_runtime.stage_data` stages `spec.data.uri`.

The operator runs it as the `stage-data` init container of every worker pod (local mode runs it
once per node before the launchers), so the data is in `$TRAINFORGE_DATA_DIR` before any rank
starts. It copies one object, or every object under a prefix, through fsspec (s3://, gs://,
http(s)://, file:// or a path), logging bytes done as it goes. Its termination message (the
launcher's JSON format) carries the bytes and files staged, which the operator shows in the
`DataStaged` condition. A URI that cannot be read (missing, access denied, unknown scheme) exits
67 (DataStagingFailed, permanent) with a message naming the URI and the error; a storage that is
only unreachable exits 75 (retryable). Credentials arrive as AWS_* env from a Secret reference and
are never printed; storage options are not printed either.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainforge_api import exitcodes, termination
from trainforge_api.context import DATA_DIR, ENV_DATA_DIR
from trainforge_api.trainingjob import Data
from trainforge_runtime.artifacts import resolve_endpoint
from trainforge_runtime.config import DEFAULT_TERMINATION_LOG, ENV_TERMINATION_LOG, load_context

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger("trainforge.stage_data")

CHUNK = 4 << 20
LOG_EVERY_S = 2.0
ATTEMPTS = 3
STAGED_REASON = "DataStaged"
# Errors that retrying cannot fix: the URI or the credentials are wrong.
PERMANENT_ERRORS = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    ImportError,
)


@dataclass(frozen=True)
class Staged:
    """What one staging run copied."""

    uri: str
    files: int
    bytes: int
    seconds: float

    def summary(self) -> str:
        return (
            f"staged {human_bytes(self.bytes)} ({self.files} files) from {self.uri} "
            f"in {self.seconds:.1f}s"
        )


class StagingError(exitcodes.RuntimeExit):
    """The data could not be staged; the code says whether a retry can help."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop always returns


def _option(value: str) -> Any:
    """fsspec options arrive as strings (the CRD's map); true/false mean booleans."""
    return {"true": True, "false": False}.get(value.lower(), value)


def open_source(data: Data) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and path of `data.uri`, with the job's storage options."""
    from fsspec.core import url_to_fs

    uri = str(data.uri)
    options: dict[str, Any] = {k: _option(v) for k, v in data.options.items()}
    if uri.split("://", 1)[0] in ("s3", "s3a"):
        options.setdefault("skip_instance_cache", True)
        # Fail in seconds on an unreachable endpoint; the pod's restart policy retries (exit 75).
        options.setdefault(
            "config_kwargs",
            {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}},
        )
        endpoint = resolve_endpoint(data.s3_endpoint)
        if endpoint:
            options.setdefault("client_kwargs", {"endpoint_url": endpoint})
    fs, path = url_to_fs(uri, **options)
    return fs, path.rstrip("/") if path != "/" else path


def listing(fs: AbstractFileSystem, path: str) -> dict[str, int]:
    """Every object to copy, relative name -> size: the object itself, or all under a prefix."""
    if fs.isdir(path):
        found = fs.find(path, detail=True)
        files = {
            name[len(path) :].lstrip("/"): int(info.get("size") or 0)
            for name, info in found.items()
            if info.get("type") != "directory"
        }
        if not files:
            raise FileNotFoundError(f"no objects under {path}")
        return files
    info = fs.info(path)
    return {"": int(info.get("size") or 0)}


class _Meter:
    """Bytes done, logged at most every LOG_EVERY_S seconds."""

    def __init__(self, total_bytes: int, total_files: int) -> None:
        self.total_bytes, self.total_files = total_bytes, total_files
        self.bytes, self.files = 0, 0
        self.start = self.last = time.monotonic()

    def add(self, n: int) -> None:
        self.bytes += n
        now = time.monotonic()
        if now - self.last >= LOG_EVERY_S:
            self.last = now
            self.report()

    def report(self) -> None:
        pct = 100.0 * self.bytes / self.total_bytes if self.total_bytes else 100.0
        log.info(
            "staging: %s of %s (%.0f%%), %d/%d files",
            human_bytes(self.bytes),
            human_bytes(self.total_bytes),
            pct,
            self.files,
            self.total_files,
        )


def _copy(fs: AbstractFileSystem, src: str, dest: Path, meter: _Meter) -> None:
    """One object, streamed to a temporary name and renamed: a half-copied file never shows."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    done = 0
    try:
        with fs.open(src, "rb") as fin, tmp.open("wb") as fout:
            while block := fin.read(CHUNK):
                fout.write(block)
                done += len(block)
                meter.add(len(block))
        os.replace(tmp, dest)
    except BaseException:
        meter.bytes -= done  # a retry counts the object again
        tmp.unlink(missing_ok=True)
        raise
    meter.files += 1


def stage(data: Data, target: Path) -> Staged:
    """Copy `data.uri` into `target` (a single object keeps its base name)."""
    uri = str(data.uri)
    fs, path = open_source(data)
    files = listing(fs, path)
    meter = _Meter(sum(files.values()), len(files))
    log.info("staging %s (%d files) into %s", uri, len(files), target)
    for rel, _size in sorted(files.items()):
        src = f"{path}/{rel}" if rel else path
        dest = target / (rel or (path.rsplit("/", 1)[-1] or "data"))
        for attempt in range(1, ATTEMPTS + 1):
            try:
                _copy(fs, src, dest, meter)
                break
            except PERMANENT_ERRORS:
                raise
            except OSError as err:
                if attempt == ATTEMPTS:
                    raise
                log.warning("staging %s: %s; retrying (%d/%d)", src, err, attempt, ATTEMPTS)
                time.sleep(2.0**attempt)
    meter.report()
    return Staged(uri, meter.files, meter.bytes, time.monotonic() - meter.start)


def write_termination_log(text: str) -> None:
    """Best effort, like the launcher's: outside Kubernetes the path may not be writable."""
    path = Path(os.environ.get(ENV_TERMINATION_LOG, DEFAULT_TERMINATION_LOG))
    try:
        path.write_text(text)
    except OSError:
        log.debug("termination log %s not writable; skipped", path)


def classify(err: BaseException, uri: str) -> StagingError:
    """A permanent (67) or retryable (75) exit, with a message naming the URI and the error."""
    kind = type(err).__name__
    text = f"cannot stage {uri}: {kind}: {err}"[: termination.MAX_MESSAGE_CHARS]
    if isinstance(err, PERMANENT_ERRORS):
        return StagingError(exitcodes.DATA_STAGING_FAILED, text)
    return StagingError(exitcodes.TRANSIENT, text)


def run(data: Data, target: Path) -> int:
    """Stage and write the termination message; the exit code for the init container."""
    if not data.uri:
        log.info("spec.data.uri is not set: nothing to stage")
        return 0
    try:
        staged = stage(data, target)
    except Exception as err:
        exit_ = classify(err, data.uri)
        log.error("%s", exit_.message)
        summary = termination.rank_summary(exitcodes.reason_for(exit_.code), message=exit_.message)
        write_termination_log(termination.encode(summary, exit_.code))
        return exit_.code
    log.info("%s", staged.summary())
    metrics = {"data_bytes": staged.bytes, "data_files": staged.files}
    summary = termination.rank_summary(STAGED_REASON, metrics=metrics, message=staged.summary())
    write_termination_log(termination.encode(summary, 0))
    return 0


def stage_local(data: Data, out_dir: Path) -> dict[str, str]:
    """Local mode (`trainforge run --local`): stage once into `<out_dir>/data`, shared by every
    node on this machine; the env that points the workers at it. Raises StagingError."""
    if not data.uri:
        return {}
    target = out_dir / "data"
    try:
        staged = stage(data, target)
    except Exception as err:
        raise classify(err, data.uri) from None
    print(f"trainforge: {staged.summary()} into {target}", flush=True)
    return {ENV_DATA_DIR: str(target)}


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    target = Path(os.environ.get(ENV_DATA_DIR, DATA_DIR))
    try:
        ctx = load_context()
    except exitcodes.InvalidContextError as exc:
        log.error("%s", exc.message)
        summary = termination.rank_summary(exitcodes.reason_for(exc.code), message=exc.message)
        write_termination_log(termination.encode(summary, exc.code))
        return exc.code
    return run(ctx.data, target)


if __name__ == "__main__":
    sys.exit(main())
