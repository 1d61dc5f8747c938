"""`trainforge convert`: PyTorchJobs written from Kubeflow's documented API become TrainingJobs.

Each manifest under tests/unit/pytorchjobs/ converts to the TrainingJob and the warnings in
tests/unit/golden/convert/<name>.yaml (`--update-goldens` rewrites them; review the diff). The
tests after the goldens name what must hold whatever the goldens say.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainforge_api.context import parse_spec
from trainforge_runtime import cli
from trainforge_runtime.convert import ConversionError, Unwrapped, convert, unwrap_torchrun

from .golden import assert_golden

Obj = dict[str, Any]
MANIFESTS = Path(__file__).parent / "pytorchjobs"
CASES = sorted(p.stem for p in MANIFESTS.glob("*.yaml"))


def load(name: str) -> Obj:
    return dict(yaml.safe_load((MANIFESTS / f"{name}.yaml").read_text()))


@pytest.mark.parametrize("name", CASES)
def test_converts_to_golden(name: str, update_goldens: bool) -> None:
    job, warnings = convert(load(name))
    report = {"kind": "ConversionWarnings", "metadata": {"name": name}, "warnings": warnings}
    assert_golden(f"convert/{name}", [job, report], update_goldens)


@pytest.mark.parametrize("name", CASES)
def test_every_converted_job_is_valid(name: str) -> None:
    job, _ = convert(load(name))
    parse_spec(job)  # raises on a schema or rule violation


def test_master_and_workers_become_nodes_and_nproc_maps() -> None:
    job, _ = convert(load("gpu-full"))
    assert job["spec"]["parallelism"] == {"nodes": 4, "procsPerNode": 2}
    assert job["spec"]["resources"] == {
        "cpu": "16",
        "memory": "64Gi",
        "gpus": 2,
        "sharedMemory": "16Gi",
    }
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in job["metadata"]["annotations"]


def test_a_fully_mappable_job_warns_only_that_trainforge_starts_the_processes() -> None:
    _, warnings = convert(load("gpu-full"))
    assert len(warnings) == 1
    assert warnings[0].startswith("spec.nprocPerNode: 2 processes per pod with a command that")


def test_a_torchrun_command_becomes_the_plain_script() -> None:
    job, warnings = convert(load("torchrun-gpu"))
    assert job["spec"]["parallelism"] == {"nodes": 2}  # procsPerNode defaults to the 4 GPUs
    assert job["spec"]["command"] == ["python", "/workspace/finetune.py"]
    assert job["spec"]["args"] == ["--bf16"]
    assert [w.split(":")[0] for w in warnings] == [
        "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].command"
    ]
    assert "torchrun replaced by python /workspace/finetune.py" in warnings[0]


@pytest.mark.parametrize(
    ("argv", "command", "args", "nproc", "dropped"),
    [
        (["torchrun", "t.py", "--bf16"], ["python", "t.py"], ["--bf16"], None, []),
        (
            ["torchrun", "--nnodes=2", "--nproc-per-node", "4", "--standalone", "t.py", "-x"],
            ["python", "t.py"],
            ["-x"],
            "4",
            ["--nnodes=2", "--nproc-per-node 4", "--standalone"],
        ),
        (
            ["python", "-m", "torch.distributed.run", "--nproc_per_node=8", "-m", "pkg.train"],
            ["python", "-m", "pkg.train"],
            [],
            "8",
            ["--nproc_per_node=8", "-m"],
        ),
        (
            ["/usr/bin/torchrun", "--no-python", "--rdzv_endpoint", "h:1", "./run.sh", "a"],
            ["./run.sh"],
            ["a"],
            None,
            ["--no-python", "--rdzv_endpoint h:1"],
        ),
    ],
)
def test_torchrun_is_taken_apart(
    argv: list[str], command: list[str], args: list[str], nproc: str | None, dropped: list[str]
) -> None:
    assert unwrap_torchrun(argv) == Unwrapped(command, args, nproc, dropped)


def test_torchrun_nproc_becomes_procs_per_node() -> None:
    job = load("torchrun-gpu")
    for role in ("Master", "Worker"):
        container = job["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]["containers"][0]
        container["command"] = ["torchrun", "--nproc-per-node=2", "/workspace/finetune.py"]
    del job["spec"]["nprocPerNode"]
    converted, _ = convert(job)
    assert converted["spec"]["parallelism"] == {"nodes": 2, "procsPerNode": 2}


def test_every_unmappable_field_is_named() -> None:
    _, warnings = convert(load("unmappable"))
    text = "\n".join(warnings)
    base = "spec.pytorchReplicaSpecs.Master.template.spec"
    for path in (
        f"{base}.hostNetwork",
        f"{base}.dnsPolicy",
        f"{base}.initContainers",
        f"{base}.containers[0]",
        f"{base}.containers[1].ports[1]",
        f"{base}.containers[1].livenessProbe",
        f"{base}.containers[1].resources.requests.cpu",
        f"{base}.containers[1].resources.limits.ephemeral-storage",
        "spec.pytorchReplicaSpecs.Master.restartPolicy",
        "spec.pytorchReplicaSpecs.Worker.restartPolicy",
        "spec.pytorchReplicaSpecs.Worker.template.spec.containers",
        "spec.runPolicy.schedulingPolicy.minAvailable",
        "spec.runPolicy.schedulingPolicy.minResources",
        "spec.nprocPerNode",
    ):
        assert any(w.startswith(path + ":") for w in warnings), f"no warning for {path}:\n{text}"
    assert "containers[1].ports[0]" not in text  # Kubeflow's own port is simply dropped


def test_elastic_bounds_map_and_restart_never_means_no_restarts() -> None:
    job, warnings = convert(load("elastic-workers"))
    assert job["spec"]["parallelism"] == {
        "nodes": 2,
        "procsPerNode": 1,
        "minNodes": 2,
        "maxNodes": 4,
    }
    assert job["spec"]["runPolicy"] == {"maxRestarts": 0, "cleanPodPolicy": "None"}
    named = {w.split(":")[0] for w in warnings}
    for key in ("rdzvBackend", "rdzvPort", "maxRestarts"):
        assert f"spec.elasticPolicy.{key}" in named
    assert not named & {"spec.elasticPolicy.minReplicas", "spec.elasticPolicy.maxReplicas"}
    assert "spec.runPolicy.managedBy" in named


def test_elastic_bounds_that_do_not_hold_the_gang_keep_it_fixed() -> None:
    pytorchjob = load("elastic-workers")
    pytorchjob["spec"]["elasticPolicy"].update(minReplicas=3, maxReplicas=4)  # 2 replicas < 3
    job, warnings = convert(pytorchjob)
    assert job["spec"]["parallelism"] == {"nodes": 2, "procsPerNode": 1}
    assert any(
        w.startswith("spec.elasticPolicy.minReplicas:") and "fixed size" in w for w in warnings
    ), warnings


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda j: j.update(kind="TFJob"), "kind: expected PyTorchJob"),
        (lambda j: j.update(apiVersion="example.com/v1"), "apiVersion: expected kubeflow.org"),
        (lambda j: j["spec"].update(pytorchReplicaSpecs={}), "needs a Master or a Worker"),
        (
            lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"].update(replicas=2),
            "exactly one Master",
        ),
        (
            lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"].update(
                containers=[]
            ),
            "Master.template.spec.containers: no container",
        ),
        (lambda j: j["metadata"].update(name="Bad_Name"), "metadata.name must be a DNS-1035"),
    ],
)
def test_unconvertible_input_is_an_error_naming_the_field(edit: Any, error: str) -> None:
    job = copy.deepcopy(load("mnist-cpu"))
    edit(job)
    with pytest.raises(ConversionError, match=error.replace(".", r"\.")):
        convert(job)


def test_cli_prints_the_job_and_warns_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["convert", str(MANIFESTS / "unmappable.yaml")]) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out) == convert(load("unmappable"))[0]
    assert "warning: spec.pytorchReplicaSpecs.Master.template.spec.hostNetwork:" in err


def test_cli_fails_clearly_on_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    assert cli.main(["convert", str(path)]) == 2
    assert "holds no document with kind: PyTorchJob" in capsys.readouterr().err


def test_cli_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO((MANIFESTS / "mnist-cpu.yaml").read_text()))
    assert cli.main(["convert", "-"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["metadata"]["name"] == "mnist-cpu"
