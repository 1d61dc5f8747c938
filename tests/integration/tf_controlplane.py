"""A real Kubernetes control plane with kwok fake nodes, started as plain processes.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built from the Go module
proxy by ``hack/build-*.sh``) plus kwok, which plays the kubelets of fake GPU and CPU nodes using
the Stage documents in ``hack/kwok/stages.yaml``. Nothing is downloaded and no container runs,
so the tier starts in seconds and needs no Docker. Used by ``tests/integration/conftest.py`` and
runnable by hand: ``python tests/integration/tf_controlplane.py up`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"
STAGES = HACK / "kwok" / "stages.yaml"

GPU_POOL_LABEL = "trainforge.io/pool"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"


class TierError(RuntimeError):
    """The tier could not be built or started; the message says what to run or where to look."""


@dataclass(frozen=True)
class Tool:
    """A binary the tier needs and the hack script that builds it."""

    name: str
    path: Path
    script: str


@dataclass(frozen=True)
class Toolset:
    """Paths of every binary, resolved from the pinned versions in ``hack/lib.sh``."""

    etcd: Tool
    apiserver: Tool
    controller_manager: Tool
    scheduler: Tool
    kubectl: Tool
    kwok: Tool
    kueue: Tool

    def all(self) -> list[Tool]:
        return [
            self.etcd,
            self.apiserver,
            self.controller_manager,
            self.scheduler,
            self.kubectl,
            self.kwok,
            self.kueue,
        ]

    def missing(self) -> list[Tool]:
        return [t for t in self.all() if not os.access(t.path, os.X_OK)]


def pinned_versions() -> dict[str, str]:
    """Read CACHE_DIR and the pinned versions from hack/lib.sh so there is one source of truth."""
    script = (
        f'source "{HACK / "lib.sh"}" >/dev/null; '
        'printf "%s\\n" "$CACHE_DIR" "$K8S_VERSION" "$ETCD_VERSION" "$KWOK_VERSION" '
        '"$KUEUE_VERSION"'
    )
    out = subprocess.run(
        ["bash", "-c", script], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    return {"cache": out[0], "k8s": out[1], "etcd": out[2], "kwok": out[3], "kueue": out[4]}


def find_tools() -> Toolset:
    """Locate the cached binaries (they live outside the repo, keyed by version)."""
    v = pinned_versions()
    cache = Path(v["cache"])
    k8s = cache / f"k8s-{v['k8s']}" / "bin"
    return Toolset(
        etcd=Tool("etcd", cache / f"etcd-{v['etcd']}" / "bin" / "etcd", "hack/build-etcd.sh"),
        apiserver=Tool("kube-apiserver", k8s / "kube-apiserver", "hack/build-k8s.sh"),
        controller_manager=Tool(
            "kube-controller-manager", k8s / "kube-controller-manager", "hack/build-k8s.sh"
        ),
        scheduler=Tool("kube-scheduler", k8s / "kube-scheduler", "hack/build-k8s.sh"),
        kubectl=Tool("kubectl", k8s / "kubectl", "hack/build-k8s.sh"),
        kwok=Tool("kwok", cache / f"kwok-{v['kwok']}" / "bin" / "kwok", "hack/build-kwok.sh"),
        kueue=Tool("kueue", cache / f"kueue-{v['kueue']}" / "bin" / "kueue", "hack/build-kueue.sh"),
    )


def ensure_tools(say: Callable[[str], None] = print) -> Toolset:
    """Run every tool's build script (a no-op once cached; it waits while `make prefetch` is
    building that tool in the background); raise TierError if one fails."""
    tools = find_tools()
    missing = {t.script for t in tools.missing()}
    for script in dict.fromkeys(t.script for t in tools.all()):
        if script in missing:
            say(f"[control-plane] building missing tools: {script} (cached afterwards)")
        started = time.monotonic()
        proc = subprocess.run(["nice", "-n", "10", str(REPO_ROOT / script)], check=False)
        if proc.returncode != 0:
            raise TierError(
                f"{script} failed (exit {proc.returncode}). Run `{script}` by hand, fix what it "
                "reports, then re-run the tests."
            )
        if time.monotonic() - started > 1:
            say(f"[control-plane] {script} done in {time.monotonic() - started:.0f}s")
    still = find_tools().missing()
    if still:
        names = ", ".join(f"{t.name} ({t.path})" for t in still)
        cmds = " && ".join(dict.fromkeys(t.script for t in still))
        raise TierError(f"missing after build: {names}. Run `{cmds}` and check its output.")
    return tools


def free_port() -> int:
    """A currently free localhost TCP port (so several sessions can run side by side)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Child-side hook: get SIGTERM when the test process dies, so no component is orphaned."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """CA, an apiserver serving cert for 127.0.0.1/localhost, and the service-account key pair."""
    d.mkdir(parents=True, exist_ok=True)
    ext = d / "san.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=trainforge-test-ca",
        "-days", "2", "-out", "ca.crt", cwd=d,
    )  # fmt: skip
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "apiserver.key", cwd=d)
    _openssl(
        "req", "-new", "-key", "apiserver.key", "-subj", "/CN=kube-apiserver",
        "-out", "apiserver.csr", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "apiserver.crt", cwd=d,
    )  # fmt: skip
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=d)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def node_manifest(name: str, pool: str, gpus: int) -> dict[str, Any]:
    """A kwok-managed Node; capacity set on create is kept by the node-initialize stage."""
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        GPU_POOL_LABEL: pool,
    }
    spec: dict[str, Any] = {}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        labels["nvidia.com/gpu.product"] = "NVIDIA-A100-SXM4-80GB"
        labels["nvidia.com/gpu.count"] = str(gpus)
        spec["taints"] = [GPU_TAINT]
    else:
        capacity.update(cpu="16", memory="64Gi")
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {FAKE_NODE_ANNOTATION: "fake"}},
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


@dataclass
class NodePools:
    """How many fake nodes of each pool to create."""

    gpu_nodes: int = 2
    cpu_nodes: int = 2
    gpus_per_node: int = 8

    def manifests(self) -> list[dict[str, Any]]:
        gpu = [node_manifest(f"gpu-{i}", "gpu", self.gpus_per_node) for i in range(self.gpu_nodes)]
        cpu = [node_manifest(f"cpu-{i}", "cpu", 0) for i in range(self.cpu_nodes)]
        return gpu + cpu


@dataclass
class ControlPlane:
    """One running tier. ``kubeconfig``/``server`` are what clients (kopf, kubectl) need."""

    tools: Toolset
    workdir: Path
    pools: NodePools = field(default_factory=NodePools)
    kubeconfig: str = ""
    server: str = ""
    _procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = field(default_factory=list)
    _token: str = ""

    # ---- public interface -------------------------------------------------------------------
    def kubectl(
        self, *args: str, check: bool = False, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this tier (text output captured; ``check`` raises on failure)."""
        cmd = [str(self.tools.kubectl.path), "--kubeconfig", self.kubeconfig, *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, check=check, input=input, timeout=timeout
        )

    def kubectl_json(self, *args: str) -> Any:
        """kubectl ... -o json, parsed; raises CalledProcessError with stderr on failure."""
        return json.loads(self.kubectl(*args, "-o", "json", check=True).stdout)

    def apply(self, manifest: dict[str, Any] | str) -> None:
        """kubectl apply -f - for a dict (serialised as JSON) or a YAML string."""
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        proc = self.kubectl("apply", "-f", "-", input=text)
        if proc.returncode != 0:
            raise TierError(f"kubectl apply failed: {proc.stderr.strip()}")

    def env(self) -> dict[str, str]:
        """os.environ plus KUBECONFIG, for subprocesses such as the operator under test."""
        return {**os.environ, "KUBECONFIG": self.kubeconfig}

    def log_path(self, component: str) -> Path:
        return self.workdir / "logs" / f"{component}.log"

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> None:
        """Bring every component up and wait until nodes are Ready and the KCM works."""
        deadline = time.monotonic() + timeout
        pki = self.workdir / "pki"
        make_pki(pki)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self._token = secrets.token_hex(16)
        (pki / "tokens.csv").write_text(f"{self._token},admin,admin,system:masters\n")
        etcd_url = self._start_etcd(deadline)
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        self._start_apiserver(etcd_url, port, pki, deadline)
        self._write_kubeconfig(pki)
        self._start_controllers(pki)
        self._apply_nodes()
        self._wait_ready(deadline)

    def stop(self) -> None:
        """SIGTERM every component in reverse start order, then SIGKILL stragglers."""
        for _, proc, _ in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc, logf in reversed(self._procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            logf.close()
        self._procs.clear()

    def restart(self, name: str, down_seconds: float = 0.0, timeout: float = 60) -> float:
        """Stop one component (SIGTERM), keep it down `down_seconds`, start it again with the
        same arguments (the apiserver on the same port, so clients see a restart, not a move),
        and wait until it answers again. Returns the seconds it was down. For chaos tests."""
        i = next(i for i, (n, _, _) in enumerate(self._procs) if n == name)
        _, proc, logf = self._procs.pop(i)
        stopped = time.monotonic()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        logf.close()
        time.sleep(down_seconds)
        argv = [str(a) for a in proc.args]  # type: ignore[union-attr]
        logf = open(self.log_path(name), "ab")  # noqa: SIM115 - closed in stop()
        new = subprocess.Popen(
            argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.workdir, preexec_fn=_die_with_parent,
        )  # fmt: skip
        self._procs.insert(i, (name, new, logf))
        if name == "kube-apiserver":
            ctx = ssl.create_default_context(cafile=str(self.workdir / "pki" / "ca.crt"))
            url = f"{self.server}/readyz"
            self._wait(f"{name} /readyz after a restart",
                       lambda: _http_ok(url, ctx=ctx, token=self._token),
                       time.monotonic() + timeout)  # fmt: skip
        return time.monotonic() - stopped

    def start_kueue(self, timeout: float = 90) -> None:
        """Install Kueue's CRDs and run its controller manager (tests/integration/tf_kueue.py
        says how: only the storage versions are served, no webhook is registered)."""
        from tf_kueue import kueue_argv, kueue_crds, write_kueue_files

        if any(n == "kueue" for n, _, _ in self._procs):
            return
        deadline = time.monotonic() + timeout
        try:
            manifests, names = kueue_crds(self.tools)
            argv = kueue_argv(self.tools, self.kubeconfig)
        except FileNotFoundError as err:
            raise TierError(str(err)) from err
        proc = self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=manifests
        )
        if proc.returncode != 0:
            raise TierError(f"installing Kueue's CRDs failed: {proc.stderr.strip()}")
        self.kubectl("wait", "--for=condition=Established", "--timeout=120s",
                     *(f"crd/{n}" for n in names), check=True)  # fmt: skip
        self.kubectl("create", "namespace", "kueue-system", check=False)
        files = write_kueue_files(self.workdir / "kueue", self.workdir / "pki")
        self._spawn("kueue", [*argv, str(files.etc_overlay), str(files.config)])
        self._wait("kueue /readyz", lambda: _http_ok(files.readyz), deadline)

    # ---- internals ----------------------------------------------------------------------------
    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        logf = open(self.log_path(name), "wb")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            list(argv),
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            preexec_fn=_die_with_parent,  # only sets PDEATHSIG
        )
        self._procs.append((name, proc, logf))
        return proc

    def _check_alive(self) -> None:
        for name, proc, _ in self._procs:
            if proc.poll() is not None:
                raise TierError(
                    f"{name} exited with {proc.returncode}; last log lines:\n"
                    f"{self._tail(name)}\nfull log: {self.log_path(name)}"
                )

    def _tail(self, name: str, lines: int = 25) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _wait(self, what: str, probe: Callable[[], bool], deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            if probe():
                return
            time.sleep(0.2)
        logs = "\n".join(f"--- {n}:\n{self._tail(n, 10)}" for n, _, _ in self._procs)
        raise TierError(f"timed out waiting for {what}; logs under {self.workdir}/logs\n{logs}")

    def _start_etcd(self, deadline: float) -> str:
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                str(self.tools.etcd.path),
                "--name=tf",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=tf=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait("etcd /health", lambda: _http_ok(f"{url}/health"), deadline)
        return url

    def _start_apiserver(self, etcd_url: str, port: int, pki: Path, deadline: float) -> None:
        self._spawn(
            "kube-apiserver",
            [
                str(self.tools.apiserver.path),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={pki / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        url = f"{self.server}/readyz"
        self._wait(
            "kube-apiserver /readyz", lambda: _http_ok(url, ctx=ctx, token=self._token), deadline
        )

    def _write_kubeconfig(self, pki: Path) -> None:
        import base64

        ca = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "tf", "cluster": {"server": self.server, "certificate-authority-data": ca}}
            ],
            "users": [{"name": "admin", "user": {"token": self._token}}],
            "contexts": [{"name": "tf", "context": {"cluster": "tf", "user": "admin"}}],
            "current-context": "tf",
        }
        path = self.workdir / "kubeconfig"
        path.write_text(json.dumps(cfg, indent=2))
        path.chmod(0o600)
        self.kubeconfig = str(path)

    def _start_controllers(self, pki: Path) -> None:
        kc = self.kubeconfig
        self._spawn(
            "kube-controller-manager",
            [
                str(self.tools.controller_manager.path),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.tools.scheduler.path),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ],
        )
        self._spawn(
            "kwok",
            [
                str(self.tools.kwok.path),
                f"--kubeconfig={kc}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                f"--config={STAGES}",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        )

    def _apply_nodes(self) -> None:
        for node in self.pools.manifests():
            self.apply(node)

    def _wait_ready(self, deadline: float) -> None:
        want = self.pools.gpu_nodes + self.pools.cpu_nodes

        def nodes_ready() -> bool:
            proc = self.kubectl("get", "nodes", "-o", "json")
            if proc.returncode != 0:
                return False
            ready = [
                n
                for n in json.loads(proc.stdout)["items"]
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return len(ready) == want

        self._wait(f"{want} Ready kwok nodes", nodes_ready, deadline)
        self._wait(
            "the default ServiceAccount (kube-controller-manager)",
            lambda: self.kubectl("get", "serviceaccount", "default").returncode == 0,
            deadline,
        )


def _http_ok(
    url: str, ctx: ssl.SSLContext | None = None, token: str | None = None, timeout: float = 2
) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_control_plane(
    pools: NodePools | None = None,
    keep: bool = False,
    say: Callable[[str], None] = print,
    tools: Toolset | None = None,
) -> Iterator[ControlPlane]:
    """Build what is missing, start the tier, yield it, and always tear it down."""
    tools = tools or ensure_tools(say)
    workdir = Path(tempfile.mkdtemp(prefix="tf-controlplane-"))
    cp = ControlPlane(tools=tools, workdir=workdir, pools=pools or NodePools())
    started = time.monotonic()
    try:
        cp.start()
        say(f"[control-plane] up in {time.monotonic() - started:.1f}s at {cp.server}")
        yield cp
    finally:
        cp.stop()
        if keep:
            say(f"[control-plane] kept {workdir} (logs, kubeconfig)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build missing binaries (etcd, kube-*, kwok)")
    up = sub.add_parser("up", help="start the tier and keep it running until Ctrl-C")
    up.add_argument("--gpu-nodes", type=int, default=2)
    up.add_argument("--cpu-nodes", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "build":
            ensure_tools()
            return 0
        pools = NodePools(gpu_nodes=args.gpu_nodes, cpu_nodes=args.cpu_nodes)
        with running_control_plane(pools, keep=True) as cp:
            print(f"export KUBECONFIG={cp.kubeconfig}   # Ctrl-C stops the tier", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
    except TierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
