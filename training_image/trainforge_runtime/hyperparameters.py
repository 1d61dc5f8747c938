"""How `spec.hyperparameters` reach a user's own script, per `spec.hyperparametersAs`.

A script that never imports trainforge reads them the usual ways: env `TRAINFORGE_HP_<NAME>`
(strings), a JSON file at `$TRAINFORGE_HP_FILE` (typed), or `--name=value` arguments appended
after `spec.args` (only on request: an argparse script fails on flags it does not know). The text
rules live in `trainforge_launcher.contract`, shared with the standalone launcher.
"""

from __future__ import annotations

from pathlib import Path

from trainforge_api.context import JobContext
from trainforge_api.termination import strict_dumps
from trainforge_launcher.contract import HP_FILE_NAME
from trainforge_launcher.contract import hp_args as hp_args
from trainforge_launcher.contract import hp_channels as channels
from trainforge_launcher.contract import hp_env as hp_env
from trainforge_launcher.contract import hp_env_name as env_name
from trainforge_launcher.contract import hp_text as as_text

__all__ = ["HP_FILE_NAME", "as_text", "env_name", "hp_args", "hp_channels", "hp_env"]


def hp_channels(ctx: JobContext, run_dir: Path) -> tuple[dict[str, str], list[str]]:
    """The env to add for every rank and the arguments to append, writing the JSON file (always
    into the run directory, so it exists even when only env or args were asked for)."""
    path = run_dir / HP_FILE_NAME
    path.write_text(strict_dumps(ctx.hyperparameters, indent=2))
    return channels(ctx.hyperparameters, list(ctx.hyperparameters_as), str(path))
