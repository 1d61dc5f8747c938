"""Sweep engine benchmark: TPE vs random search, and the trial-steps median pruning saves.

Drives the sweep engine exactly as the operator does (trainforge_sweep: rebuild the study from the
trial records, ask for the next trial with a per-trial seed, ask the pruner about running trials)
on a cheap synthetic objective: a 4-parameter "training run" whose validation accuracy rises over
20 steps towards a final value that peaks at lr=0.01, hidden=128, dropout=0.2, opt=adam, with
deterministic per-trial noise. Trials run one at a time; progress is reported every 2 steps.

1. For each seed: the best value of a 20-trial random search, then how many TPE trials (another
   seed, so its random startup trials differ; at most 80) it takes to match it.
2. For each seed: 30 TPE trials without pruning vs with median pruning (5 startup trials, no
   pruning before step 6):
   trial-steps spent and the best value reached.

Writes bench/results/sweep-search.json; run `python -m bench.sweep_search [--seeds 8]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from trainforge_api.trainingsweep import TrainingSweepSpec
from trainforge_sweep import study
from trainforge_sweep.trials import TrialRecord

RESULTS = Path(__file__).parent / "results" / "sweep-search.json"
STEPS, REPORT_EVERY = 20, 2
RANDOM_TRIALS, TPE_CAP, PRUNE_TRIALS = 20, 80, 30


def spec(algorithm: str, seed: int, pruning: bool = False) -> TrainingSweepSpec:
    return TrainingSweepSpec.model_validate(
        {
            "objective": {"metric": "acc", "direction": "maximize"},
            "parameters": [
                {"name": "lr", "type": "float", "low": 1e-4, "high": 1.0, "log": True},
                {"name": "hidden", "type": "int", "low": 16, "high": 256, "step": 16},
                {"name": "dropout", "type": "float", "low": 0.0, "high": 0.5},
                {"name": "opt", "type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
            ],
            "algorithm": {"type": algorithm, "seed": seed},
            "earlyStopping": {
                "type": "median" if pruning else "none",
                "startupTrials": 5,
                "warmupSteps": 6,
            },
            "maxTrials": 1000,
            "parallelTrials": 1,
            "trialTemplate": {"command": ["bench"]},
        }
    )


def final_value(p: dict[str, Any]) -> float:
    """Peak 0.99 at lr=0.01, hidden=128, dropout=0.2, adam; small deterministic noise."""
    loss = (math.log10(p["lr"]) + 2) ** 2 * 0.08
    loss += ((p["hidden"] - 128) / 128) ** 2 * 0.05 + (p["dropout"] - 0.2) ** 2 * 0.4
    loss += {"adam": 0.0, "rmsprop": 0.02, "sgd": 0.05}[p["opt"]]
    digest = hashlib.sha256(json.dumps(p, sort_keys=True).encode()).digest()
    noise = (digest[0] / 255 - 0.5) * 0.01
    return max(0.0, 0.99 - loss + noise)


def curve(p: dict[str, Any], step: int) -> float:
    """Accuracy after `step` of STEPS: rises towards the final value (faster with higher lr)."""
    tau = 2 + 4 * abs(math.log10(p["lr"]) + 1.5)
    return final_value(p) * (1 - math.exp(-step / tau)) / (1 - math.exp(-STEPS / tau))


def run_trial(s: TrainingSweepSpec, records: list[TrialRecord], k: int) -> TrialRecord:
    """Suggest trial k, 'train' it, asking the pruner every REPORT_EVERY steps."""
    built, _ = study.rebuild(s, "bench", records)
    (sug,) = study.suggest(built, s, [k])
    seen: dict[int, float] = {}
    for step in range(REPORT_EVERY, STEPS + 1, REPORT_EVERY):
        seen[step] = curve(sug.params, step)
        if s.early_stopping.type != "none" and step < STEPS:
            running = TrialRecord(k, f"b-{k}", sug.params, "Running", None, dict(seen))
            built, index = study.rebuild(s, "bench", [*records, running])
            pruned, _ = study.prune_verdicts(built, index, [running])
            if pruned:
                return TrialRecord(k, f"b-{k}", sug.params, "Pruned", None, dict(seen))
    return TrialRecord(k, f"b-{k}", sug.params, "Succeeded", [final_value(sug.params)], seen)


def best(records: list[TrialRecord]) -> float:
    return max((r.values[0] for r in records if r.values), default=0.0)


def search(s: TrainingSweepSpec, trials: int, stop_at: float | None = None) -> list[TrialRecord]:
    records: list[TrialRecord] = []
    for k in range(trials):
        records.append(run_trial(s, records, k))
        if stop_at is not None and best(records) >= stop_at:
            break
    return records


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "mean": round(statistics.fmean(values), 4),
        "stdev": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        target = best(search(spec("random", seed), RANDOM_TRIALS))
        # Another seed: TPE starts with random trials, which must not replay the random search's.
        tpe = search(spec("tpe", seed + 1000), TPE_CAP, stop_at=target)
        plain = search(spec("tpe", seed), PRUNE_TRIALS)
        pruned = search(spec("tpe", seed, pruning=True), PRUNE_TRIALS)
        row = {
            "seed": seed,
            "random20_best": round(target, 4),
            "tpe_trials_to_match": len(tpe) if best(tpe) >= target else None,
            "no_pruning": {"best": round(best(plain), 4), "trial_steps": sum(
                max(r.intermediate) for r in plain)},
            "median_pruning": {
                "best": round(best(pruned), 4),
                "trial_steps": sum(max(r.intermediate) for r in pruned),
                "pruned_trials": sum(1 for r in pruned if r.state == "Pruned"),
            },
        }  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    matched = [float(r["tpe_trials_to_match"]) for r in rows if r["tpe_trials_to_match"]]
    saved = [1 - r["median_pruning"]["trial_steps"] / r["no_pruning"]["trial_steps"] for r in rows]
    gap = [r["no_pruning"]["best"] - r["median_pruning"]["best"] for r in rows]
    summary = {
        "tpe_trials_to_match_random20": spread(matched),
        "tpe_never_matched_within_cap": sum(1 for r in rows if not r["tpe_trials_to_match"]),
        "trial_steps_saved_by_median_pruning": spread([round(x, 4) for x in saved]),
        "best_value_lost_to_pruning": spread([round(x, 4) for x in gap]),
    }
    result = {
        "benchmark": "sweep-search",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "setup": {
            "steps_per_trial": STEPS,
            "report_every": REPORT_EVERY,
            "random_trials": RANDOM_TRIALS,
            "tpe_cap": TPE_CAP,
            "pruning_trials": PRUNE_TRIALS,
            "seeds": args.seeds,
        },
        "summary": summary,
        "runs": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
