"""A plain script that reads its hyperparameters the three documented ways and writes them out."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--tag", default="")
parser.add_argument("--lr", type=float, default=None)
parser.add_argument("--epochs", type=int, default=None)
parser.add_argument("--layers", default=None)
parser.add_argument("--amp", default=None)
args = parser.parse_args()
hp_file = os.environ.get("TRAINFORGE_HP_FILE")
seen = {
    "args": vars(args),
    "env": {k: v for k, v in os.environ.items() if k.startswith("TRAINFORGE_HP_")},
    "file": json.loads(Path(hp_file).read_text()) if hp_file else None,
}
rank = os.environ["RANK"]
(Path(os.environ["TRAINFORGE_RUN_DIR"]) / f"hp-{rank}.json").write_text(json.dumps(seen))
