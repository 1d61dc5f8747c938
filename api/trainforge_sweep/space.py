"""The search space (spec.parameters) as Optuna distributions, and as a grid."""

from __future__ import annotations

import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from trainforge_api.trainingsweep import Parameter


def distribution(p: Parameter) -> BaseDistribution:
    """One parameter as an Optuna distribution (the sweep rules already hold)."""
    if p.type == "categorical":
        return CategoricalDistribution(list(p.choices))
    low, high = float(p.low if p.low is not None else 0), float(p.high if p.high is not None else 0)
    if p.type == "int":
        int_step = 1 if p.log or p.step is None else int(p.step)
        return IntDistribution(math.ceil(low), math.floor(high), log=p.log, step=int_step)
    return FloatDistribution(low, high, log=p.log, step=None if p.log else p.step)


def distributions(params: list[Parameter]) -> dict[str, BaseDistribution]:
    return {p.name: distribution(p) for p in params}


def grid_values(p: Parameter) -> list[Any]:
    """Every value grid search visits for this parameter."""
    dist = distribution(p)
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if not isinstance(dist, FloatDistribution) or dist.step is None:
        raise ValueError(f"parameter {p.name}: a continuous range has no grid (set step)")
    count = round((dist.high - dist.low) / dist.step) + 1
    return [round(dist.low + i * dist.step, 12) for i in range(count)]


def grid(params: list[Parameter]) -> dict[str, list[Any]]:
    return {p.name: grid_values(p) for p in params}


def grid_size(params: list[Parameter]) -> int:
    return math.prod(len(values) for values in grid(params).values())
