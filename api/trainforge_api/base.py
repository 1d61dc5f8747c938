"""The API group and the base model every trainforge API object derives from."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "trainforge.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Model(BaseModel):
    """snake_case in Python, camelCase on the wire (dump with `by_alias=True`); unknown fields
    are errors, so a typo in a manifest is reported instead of ignored."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, alias_generator=to_camel, validate_default=True
    )
