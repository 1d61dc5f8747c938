"""Kueue (sigs.k8s.io/kueue, built by ``hack/build-kueue.sh``) as one more tier process.

How it runs outside a cluster, and why:
- **CRDs: only the storage version is served.** Kueue v0.19's CRDs list v1beta1 and v1beta2 and
  convert between them with a webhook that the upstream kustomization patches in. With that
  webhook unregistered, the API server would hand out v1beta2 objects relabelled v1beta1 (the
  ``None`` strategy), which is wrong, so each CRD here keeps only its storage version (v1beta2)
  and needs no conversion. The manager and the operator both speak v1beta2 only.
- **No admission webhooks are registered.** The manager still starts its webhook server (it
  refuses to run without one), on a loopback port with a certificate from the tier's CA, but no
  Validating/MutatingWebhookConfiguration points at it. trainforge creates its Workloads fully
  specified (names, counts, priority resolved), and the CRDs' own CEL rules still validate them.
  The Kueue objects the tests create (ResourceFlavor, ClusterQueue, LocalQueue,
  WorkloadPriorityClass) need no defaulting webhook either.
- **Metrics certificate.** With internal certificate management off, the manager reads its
  metrics serving certificate from the fixed path ``/etc/kueue/metrics/certs`` (cmd/kueue/main.go
  has no flag for it). Rather than writing under /etc, the manager runs in its own user and mount
  namespace (``unshare``) where a read-only overlay adds that directory over the real /etc.
- **No visibility server.** The on-demand visibility API (an aggregated API server with its own
  certificates under /visibility) is switched off (feature gate VisibilityOnDemand=false): the
  tests read Workloads and queue status directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GROUP = "kueue.x-k8s.io"
EXTERNAL_FRAMEWORK = "TrainingJob.v1alpha1.trainforge.io"


@dataclass(frozen=True)
class KueueFiles:
    config: Path
    etc_overlay: Path  # lower layer holding kueue/metrics/certs/tls.{crt,key}
    readyz: str


def crd_dir(tools: Any) -> Path:
    """config/crd/bases next to the built binary (hack/build-kueue.sh copies it there)."""
    return Path(tools.kueue.path).parent.parent / "config" / "crd" / "bases"


def kueue_crds(tools: Any) -> tuple[str, list[str]]:
    """Every Kueue CRD, reduced to its storage version (see the module docstring)."""
    docs: list[dict[str, Any]] = []
    for path in sorted(crd_dir(tools).glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        crd["spec"]["versions"] = [v for v in crd["spec"]["versions"] if v.get("storage")]
        crd["spec"].pop("conversion", None)
        docs.append(crd)
    if not docs:
        raise FileNotFoundError(f"no Kueue CRDs under {crd_dir(tools)}; run hack/build-kueue.sh")
    return "\n".join(json.dumps(d) for d in docs), [d["metadata"]["name"] for d in docs]


def _serving_cert(out: Path, pki: Path) -> None:
    """tls.crt/tls.key for 127.0.0.1, signed by the tier's CA."""
    out.mkdir(parents=True, exist_ok=True)
    ext = out / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=out, check=True, capture_output=True)

    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "tls.key")
    run("req", "-new", "-key", "tls.key", "-subj", "/CN=kueue", "-out", "tls.csr")
    run(
        "x509", "-req", "-in", "tls.csr", "-CA", str(pki / "ca.crt"), "-CAkey",
        str(pki / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
        "-out", "tls.crt",
    )  # fmt: skip


def write_kueue_files(workdir: Path, pki: Path) -> KueueFiles:
    """The manager's Configuration (free loopback ports) and its certificates."""
    from tf_controlplane import free_port

    certs = workdir / "certs"
    _serving_cert(certs, pki)
    overlay = workdir / "etc-overlay"
    metrics_certs = overlay / "kueue" / "metrics" / "certs"
    metrics_certs.mkdir(parents=True, exist_ok=True)
    for name in ("tls.crt", "tls.key"):
        shutil.copy(certs / name, metrics_certs / name)
    health = free_port()
    config = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": "kueue-system",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
        "metrics": {"bindAddress": f"127.0.0.1:{free_port()}"},
        "webhook": {"port": free_port(), "host": "127.0.0.1", "certDir": str(certs)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        # trainforge speaks the Workload protocol itself: no built-in job integration is needed,
        # and the TrainingJob kind is declared as an external framework.
        "integrations": {"frameworks": [], "externalFrameworks": [EXTERNAL_FRAMEWORK]},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return KueueFiles(path, overlay, f"http://127.0.0.1:{health}/readyz")


def kueue_argv(tools: Any, kubeconfig: str) -> list[str]:
    """unshare + overlay mount + exec the manager (one process id, so PDEATHSIG holds); the
    overlay's lower dir and the config file path are the two arguments still to append."""
    if shutil.which("unshare") is None:
        raise FileNotFoundError("unshare (util-linux) is needed to run Kueue in the tier")
    script = (
        'mount -t overlay overlay -o "lowerdir=$3:/etc" /etc && exec "$1" "--kubeconfig=$2" '
        '"--config=$4" --zap-log-level=2 --feature-gates=VisibilityOnDemand=false'
    )
    return [
        "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "kueue",
        str(tools.kueue.path), kubeconfig,
    ]  # fmt: skip
