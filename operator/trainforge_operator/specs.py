"""A job's parsed spec, validated once per distinct spec instead of on every pass.

`parse_spec` validates the whole spec with the pydantic models and every cross-field rule: about
0.5 ms on this machine. A pass parsed it twice (decide and the job-state metric) and a job goes
through several passes per phase (every pod event wakes one), for a spec that rarely changes.
So the outcome (the model, or the InvalidSpecError message) is kept per job name and spec
content, the spec's canonical JSON (orjson with sorted keys: the standard library's took 3 % of
the operator's CPU in a burst): any edit is a new key, so nothing stale is ever answered. The
models are only read, never mutated, so a pass can share them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import orjson

from trainforge_api.context import InvalidSpecError, parse_spec
from trainforge_api.trainingjob import TrainingJobSpec

SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
MAX_SPECS = 1024  # a few MB at most; more jobs than this only parse more often
_parsed: OrderedDict[tuple[str, bytes], TrainingJobSpec | str] = OrderedDict()


def spec_of(manifest: Mapping[str, Any]) -> TrainingJobSpec:
    """`parse_spec(manifest)`, from memory when this name had this exact spec before."""
    spec_raw = manifest.get("spec")
    metadata = manifest.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(spec_raw, Mapping) or not isinstance(name, str):
        return parse_spec(manifest)
    key = (name, orjson.dumps(spec_raw, default=str, option=SORTED))
    found = _parsed.get(key)
    if found is None:
        try:
            found = parse_spec(manifest)
        except InvalidSpecError as err:
            found = str(err)
        _parsed[key] = found
        if len(_parsed) > MAX_SPECS:
            _parsed.popitem(last=False)
    else:
        _parsed.move_to_end(key)
    if isinstance(found, str):
        raise InvalidSpecError(found)
    return found
