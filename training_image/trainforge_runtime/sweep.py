"""`trainforge sweep SWEEP.yaml --local`: run a TrainingSweep on this machine.

The same engine as the operator (trainforge_sweep): each trial is the sweep's trialTemplate with
its sampled parameters, run as `trainforge run --local` in its own process, N at a time. Rank 0's
/progress is polled into the same metric history a TrainingJob's status keeps, the study is
rebuilt from the trials on every round, the pruner's verdicts stop trials (SIGTERM), and the
same completion criteria end the sweep. The same HTML report is written at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainforge_api import exitcodes
from trainforge_api.sweeprules import sweep_problems
from trainforge_api.trainingjob import METRIC_HISTORY_LIMIT, STOP_ANNOTATION
from trainforge_api.trainingsweep import TrainingSweep, TrainingSweepSpec
from trainforge_runtime.cli import fetch_progress
from trainforge_runtime.config import free_port
from trainforge_sweep import outcome, report, study
from trainforge_sweep.trials import (
    LABEL_TRIAL,
    PRUNED,
    SWEEP_ENDED,
    TrialRecord,
    record_from_job,
    trial_name,
)

POLL_SECONDS = 1.0


@dataclass
class LocalTrial:
    """One trial process and what it reported, in the shape of a TrainingJob."""

    number: int
    name: str
    params: dict[str, Any]
    port: int
    out_dir: Path
    proc: subprocess.Popen[bytes]
    history: list[dict[str, Any]] = field(default_factory=list)
    phase: str = "Running"
    results: dict[str, Any] = field(default_factory=dict)
    stopped: str | None = None  # the stop reason: Pruned, or SweepEnded

    def poll(self) -> None:
        if self.phase != "Running":
            return
        progress = fetch_progress(self.port)
        step = (progress or {}).get("step")
        advanced = isinstance(step, int) and (not self.history or step > self.history[-1]["step"])
        if progress and advanced and progress.get("metrics"):
            point = {"step": step, "metrics": progress["metrics"]}
            self.history = [*self.history, point][-METRIC_HISTORY_LIMIT:]
        code = self.proc.poll()
        if code is None:
            return
        term = self.out_dir / self.name / "termination-node0.json"
        summary = json.loads(term.read_text()) if term.exists() else {}
        self.results = dict(summary.get("metrics") or {})
        self.phase = "Stopped" if self.stopped else ("Succeeded" if code == 0 else "Failed")

    def stop(self, reason: str = PRUNED) -> None:
        """SIGTERM to the trial's whole process group (the local run and its launchers), as a
        pod deletion would: ranks checkpoint and exit."""
        if self.proc.poll() is None:
            self.stopped = reason
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def as_job(self) -> dict[str, Any]:
        stop = {STOP_ANNOTATION: self.stopped} if self.stopped else {}
        return {
            "metadata": {
                "name": self.name,
                "labels": {LABEL_TRIAL: str(self.number)},
                "annotations": stop,
            },
            "spec": {"hyperparameters": self.params},
            "status": {"phase": self.phase, "metricHistory": self.history, "results": self.results},
        }


def load_sweep(path: Path) -> tuple[str, TrainingSweepSpec]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise exitcodes.InvalidContextError(f"cannot read {path}: {exc}") from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "TrainingSweep":
            try:
                sweep = TrainingSweep.model_validate(doc)
            except ValueError as exc:
                raise exitcodes.InvalidContextError(f"invalid TrainingSweep: {exc}") from None
            problems = sweep_problems(sweep.spec)
            if problems:
                raise exitcodes.InvalidContextError("; ".join(problems))
            return str(sweep.metadata.get("name") or "sweep"), sweep.spec
    raise exitcodes.InvalidContextError(f"{path} holds no document with kind: TrainingSweep")


def _start(
    name: str, spec: TrainingSweepSpec, number: int, params: dict[str, Any], out: Path
) -> LocalTrial:
    trial = trial_name(name, number)
    template = spec.trial_template.model_dump(
        by_alias=True, exclude_none=True, exclude_unset=True, mode="json"
    )
    template["hyperparameters"] = {**template.get("hyperparameters", {}), **params}
    manifest = {"apiVersion": "trainforge.io/v1alpha1", "kind": "TrainingJob",
                "metadata": {"name": trial}, "spec": template}  # fmt: skip
    trials = out / "trials"
    trials.mkdir(parents=True, exist_ok=True)
    path = trials / f"{trial}.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    port = free_port()
    log = (trials / f"{trial}.log").open("w")
    cmd = [sys.executable, "-m", "trainforge_runtime.cli", "run", str(path), "--local",
           "--output", str(trials), "--metrics-port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return LocalTrial(number, trial, params, port, trials, proc)


def _bar(spec: TrainingSweepSpec, records: list[TrialRecord], width: int = 30) -> str:
    c = outcome.counts(spec, records)
    finished = outcome.finished(c)
    filled = int(width * finished / spec.max_trials)
    top = outcome.ranked(spec, records)
    best = f"best {top[0].values[0]:.4g} ({top[0].name})" if top and top[0].values else "best -"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {finished}/{spec.max_trials} done, "
        f"{c.running + c.pending} running, {c.pruned} pruned, {c.failed} failed, {best}"
    )


def run_sweep_local(path: Path, out_root: Path, parallel: int | None) -> int:
    name, spec = load_sweep(path)
    if parallel is not None:
        spec = spec.model_copy(update={"parallel_trials": min(parallel, spec.max_trials)})
    out = (out_root / name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    print(f"trainforge: sweep {name} locally: {spec.max_trials} trials, {spec.parallel_trials} "
          f"at a time, {spec.algorithm.type}, early stopping {spec.early_stopping.type}; "
          f"output {out}")  # fmt: skip
    trials: dict[int, LocalTrial] = {}
    started = time.monotonic()
    last = ""
    try:
        while True:
            for t in trials.values():
                t.poll()
            records = _records(spec, trials)
            built, index = study.rebuild(spec, name, records)
            pruned, _ = study.prune_verdicts(
                built, index, [r for r in records if r.state == "Running"]
            )
            for number in pruned:
                trials[number].stop()
            ending = outcome.ending(spec, records, time.monotonic() - started)
            if ending is not None:
                break
            for s in study.suggest(built, spec, _next_numbers(spec, records)):
                trials[s.number] = _start(name, spec, s.number, s.params, out)
            line = _bar(spec, _records(spec, trials))
            if line != last:
                print(line, flush=True)
                last = line
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        ending = outcome.Ending("Failed", "Interrupted", "interrupted")
    for t in trials.values():
        t.stop(SWEEP_ENDED)
        t.proc.wait()
        t.poll()
    records = _records(spec, trials)
    return _finish(name, spec, records, out, ending)


def _records(spec: TrainingSweepSpec, trials: dict[int, LocalTrial]) -> list[TrialRecord]:
    out: list[TrialRecord] = []
    for t in trials.values():
        record = record_from_job(t.as_job(), spec.objectives)
        if record is not None:
            out.append(record)
    return out


def _next_numbers(spec: TrainingSweepSpec, records: list[TrialRecord]) -> list[int]:
    first = max((r.number for r in records), default=-1) + 1
    return list(range(first, first + outcome.wanted(spec, records)))


def _finish(
    name: str,
    spec: TrainingSweepSpec,
    records: list[TrialRecord],
    out: Path,
    ending: outcome.Ending,
) -> int:
    print(_bar(spec, records))
    print(f"trainforge: sweep {ending.phase.lower()}: {ending.message}")
    for s in outcome.leaderboard(spec, records)[: spec.leaderboard_size]:
        shown = ", ".join(f"{k}={v}" for k, v in s.params.items())
        print(f"  {s.name:<24} {spec.objective.metric}={s.value:.4f}  {shown}")
    page = out / "report.html"
    page.write_text(report.render(spec, name, records))
    print(f"  report: {page}")
    return 0 if ending.phase == "Completed" else 1
