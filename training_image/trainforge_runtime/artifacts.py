"""Model artifacts: bundle a trained model (safetensors + config + labels/tokenizer + metadata)
and upload it to object storage or a PVC path with checksums, retries and an honest outcome.

Completeness rule: `manifest.json` (every file's size and sha256) is uploaded LAST, and a stale
manifest at the destination is removed FIRST. A reader that finds the manifest knows every file it
lists was fully written; a failed upload never leaves something that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from trainforge_api.context import ENV_S3_ENDPOINT

if TYPE_CHECKING:
    import torch
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_LOCAL_PROTOCOLS = {"file", "local"}
T = TypeVar("T")


class ArtifactUploadError(RuntimeError):
    """Storage stayed unreachable or rejected the upload; nothing was marked complete."""


@dataclass(frozen=True)
class UploadResult:
    uri: str
    files: int
    bytes: int
    manifest: dict[str, Any] = field(repr=False)


# --- storage -------------------------------------------------------------------------------------


def resolve_endpoint(endpoint: str | None = None) -> str | None:
    """Explicit endpoint, else `TRAINFORGE_S3_ENDPOINT`, else None (botocore's own defaults)."""
    return endpoint or os.environ.get(ENV_S3_ENDPOINT) or None


def open_fs(uri: str, endpoint: str | None = None) -> tuple[AbstractFileSystem, str]:
    """An fsspec filesystem and the path inside it for `uri` (s3://, gs://, file://, plain path).

    S3 timeouts are short and botocore retries few: callers retry with backoff themselves so an
    unreachable endpoint surfaces in seconds, not minutes. Credentials come from the standard
    AWS_* env variables (set from the job's credentials Secret), never from the context.
    """
    from fsspec.core import url_to_fs

    options: dict[str, Any] = {}
    scheme = uri.split("://", 1)[0] if "://" in uri else "file"
    if scheme in ("s3", "s3a"):
        options["config_kwargs"] = {
            "connect_timeout": 3,
            "read_timeout": 30,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
        options["skip_instance_cache"] = True
        ep = resolve_endpoint(endpoint)
        if ep:
            options["client_kwargs"] = {"endpoint_url": ep}
    elif scheme in _LOCAL_PROTOCOLS:
        options["auto_mkdir"] = True
    fs, path = url_to_fs(uri, **options)
    return fs, path.rstrip("/")


def is_local(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return bool(set(protocols) & _LOCAL_PROTOCOLS)


def put_file(fs: AbstractFileSystem, local: Path, remote: str) -> None:
    """Upload one file; on local filesystems through a temp name and an atomic rename."""
    if is_local(fs):
        fs.makedirs(os.path.dirname(remote), exist_ok=True)
        tmp = f"{remote}.tmp-{os.getpid()}"
        fs.put_file(str(local), tmp)
        os.replace(tmp, remote)
    else:
        fs.put_file(str(local), remote)


def put_bytes(fs: AbstractFileSystem, data: bytes, remote: str) -> None:
    """Write a small object; atomic on local filesystems, a single PUT on object stores."""
    if is_local(fs):
        fs.makedirs(os.path.dirname(remote), exist_ok=True)
        tmp = f"{remote}.tmp-{os.getpid()}"
        fs.pipe_file(tmp, data)
        os.replace(tmp, remote)
    else:
        fs.pipe_file(remote, data)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def with_retries(
    what: str, fn: Callable[[], T], *, retries: int, backoff: float, hint: str = ""
) -> T:
    """Run `fn`, retrying with exponential backoff (capped at 30 s) on any exception."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as err:
            if attempt == retries:
                raise ArtifactUploadError(
                    f"{what} failed after {retries + 1} attempts: {type(err).__name__}: {err}. "
                    f"{hint}"
                ).with_traceback(None) from err
            delay = min(backoff * 2**attempt, 30.0)
            log.warning(
                "%s failed (%s), retry %d/%d in %.1fs", what, err, attempt + 1, retries, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


# --- upload --------------------------------------------------------------------------------------


def _local_files(local_dir: Path) -> list[Path]:
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    return [p for p in files if p.relative_to(local_dir).as_posix() != MANIFEST_NAME]


def build_manifest(local_dir: Path, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Sizes and sha256 of every file under `local_dir` (paths relative, POSIX style)."""
    entries = [
        {
            "path": p.relative_to(local_dir).as_posix(),
            "size": p.stat().st_size,
            "sha256": sha256_file(p),
        }
        for p in _local_files(local_dir)
    ]
    return {
        "files": entries,
        "totalBytes": sum(e["size"] for e in entries),
        "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }


def upload_artifacts(
    local_dir: str | os.PathLike[str],
    uri: str,
    *,
    endpoint: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
) -> UploadResult:
    """Upload every file under `local_dir` to `uri`, then `manifest.json` last.

    Raises ArtifactUploadError when storage stays unreachable after `retries` retries per
    operation; in that case no manifest exists at `uri`, so nothing reads as complete.
    """
    src = Path(local_dir)
    if not src.is_dir():
        raise ArtifactUploadError(f"artifact directory {src} does not exist: nothing to upload")
    ep = resolve_endpoint(endpoint)
    hint = (
        f"Check that the storage at {uri}"
        + (f" (endpoint {ep})" if ep else "")
        + " is reachable and the credentials allow writes; the upload is incomplete "
        "(no manifest.json was written)."
    )
    fs, root = with_retries(
        f"opening {uri}", lambda: open_fs(uri, ep), retries=retries, backoff=backoff, hint=hint
    )
    manifest = build_manifest(src)
    remote_manifest = f"{root}/{MANIFEST_NAME}"

    def drop_stale_manifest() -> None:
        if fs.exists(remote_manifest):
            fs.rm_file(remote_manifest)

    def run(what: str, fn: Callable[[], None]) -> None:
        with_retries(what, fn, retries=retries, backoff=backoff, hint=hint)

    def upload_one(local: Path, remote: str) -> Callable[[], None]:
        return lambda: put_file(fs, local, remote)

    run(f"removing a stale {remote_manifest}", drop_stale_manifest)
    for entry in manifest["files"]:
        local, remote = src / entry["path"], f"{root}/{entry['path']}"
        run(f"uploading {entry['path']} to {uri}", upload_one(local, remote))
    data = json.dumps(manifest, indent=2).encode()
    run(f"writing {MANIFEST_NAME} to {uri}", lambda: put_bytes(fs, data, remote_manifest))
    log.info(
        "uploaded %d files (%d bytes) to %s", len(manifest["files"]), manifest["totalBytes"], uri
    )
    return UploadResult(uri, len(manifest["files"]), manifest["totalBytes"], manifest)


def verify_upload(uri: str, *, endpoint: str | None = None) -> dict[str, Any]:
    """Download everything `manifest.json` at `uri` lists and check sizes and sha256.

    Returns the manifest; raises ArtifactUploadError naming the first file that does not match.
    """
    fs, root = open_fs(uri, endpoint)
    manifest: dict[str, Any] = json.loads(fs.cat_file(f"{root}/{MANIFEST_NAME}"))
    for entry in manifest["files"]:
        data = fs.cat_file(f"{root}/{entry['path']}")
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ArtifactUploadError(f"{uri}/{entry['path']} does not match its manifest entry")
    return manifest


# --- bundle and metadata -------------------------------------------------------------------------


def _unwrap(model: Any) -> Any:
    """The user module inside DDP/FSDP-style wrappers (they expose `.module`)."""
    while hasattr(model, "module") and not isinstance(model, Mapping):
        model = model.module
    return model


def build_model_bundle(
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    out_dir: str | os.PathLike[str],
    config: Mapping[str, Any],
    labels: Iterable[str] | None = None,
    tokenizer: Mapping[str, Any] | str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write a self-describing model bundle: `model.safetensors`, `config.json` and `labels.json`
    or the tokenizer. Pass a full (unsharded) state dict for FSDP/tensor-parallel models.
    """
    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inner = _unwrap(model)
    state = inner if isinstance(inner, Mapping) else inner.state_dict()
    # clone: tied weights (e.g. GPT embeddings) share storage, which safetensors refuses
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    written = [out / "model.safetensors"]
    save_file(tensors, str(written[0]), metadata={"format": "pt"})

    cfg = dict(config)
    if isinstance(inner, torch.nn.Module):
        cfg.setdefault("architecture", f"{type(inner).__module__}.{type(inner).__qualname__}")
    written.append(_write_json(out / "config.json", cfg))
    if labels is not None:
        written.append(_write_json(out / "labels.json", list(labels)))
    if isinstance(tokenizer, Mapping):
        written.append(_write_json(out / "tokenizer.json", dict(tokenizer)))
    elif tokenizer is not None:
        src = Path(tokenizer)
        written.append(Path(shutil.copyfile(src, out / src.name)))
    return written


def dataset_fingerprint(*arrays: Any) -> str:
    """sha256 over the raw bytes, dtype and shape of arrays/tensors: same data, same fingerprint."""
    digest = hashlib.sha256()
    for arr in arrays:
        if hasattr(arr, "detach"):
            arr = arr.detach().cpu().numpy()
        digest.update(f"{arr.dtype}{tuple(arr.shape)}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def write_metadata(
    out_dir: str | os.PathLike[str],
    *,
    hyperparameters: Mapping[str, Any],
    metrics: Mapping[str, Any],
    dataset_fingerprint: str | None = None,
    image: str = "",
    layout: str = "data",
    world_size: int = 1,
    duration_seconds: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """`metadata.json`: what was trained, on what, how, and with which final metrics.

    `metrics` holds the final train/val/test figures (e.g. {"train": {...}, "test": {...}}).
    """
    from . import __version__

    try:
        import torch

        torch_version = str(torch.__version__)
    except ImportError:  # pragma: no cover - the runtime image always has torch
        torch_version = "unavailable"
    meta = {
        "hyperparameters": dict(hyperparameters),
        "metrics": dict(metrics),
        "datasetFingerprint": dataset_fingerprint,
        "image": image,
        "runtimeVersion": __version__,
        "torchVersion": torch_version,
        "pythonVersion": platform.python_version(),
        "layout": layout,
        "worldSize": world_size,
        "durationSeconds": duration_seconds,
        "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    return _write_json(Path(out_dir) / "metadata.json", meta)


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return path
