"""The progress figures the worker serves on `/progress` and the operator shows in status."""

from __future__ import annotations

# /progress `phase` when nothing in the pod reports progress (no trainforge trainer, no
# trainforge_sdk.report call): the operator then warns instead of declaring a stall.
UNREPORTED_PHASE = "unreported"


def percent_done(step: int, total_steps: int | None) -> float | None:
    """Progress in percent, two decimals, capped at 100; None while the total is unknown."""
    if not total_steps:
        return None
    return round(min(100.0, 100.0 * step / total_steps), 2)
