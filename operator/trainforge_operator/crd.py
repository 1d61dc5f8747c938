"""Build the TrainingJob CustomResourceDefinition from the pydantic models.

pydantic emits JSON Schema 2020-12 (`$ref`, `anyOf` with null, `additionalProperties: true`);
Kubernetes wants a *structural* OpenAPI v3 schema. `structural()` inlines references, drops
`null` alternatives (the API server prunes nulls of non-nullable fields, so CEL sees them as
absent), marks free-form maps `x-kubernetes-preserve-unknown-fields`, and gives every optional
nested object a default built from its fields' defaults, so CEL rules always see complete
objects. Cross-field and immutability rules are CEL (`x-kubernetes-validations`) taken from
`trainforge_api.rules`, the table the operator and the runtime check too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection
from typing import Any, Protocol

import yaml
from pydantic import BaseModel

from trainforge_api import rules, trainingjob
from trainforge_api.base import GROUP, VERSION

Schema = dict[str, Any]

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
}

PARALLELISM_RULES: list[Schema] = [r.crd() for r in rules.PARALLELISM_RULES]
SPEC_RULES: list[Schema] = [r.crd() for r in rules.SPEC_RULES] + [
    r.crd() for r in rules.TRANSITION_RULES
]
ROOT_RULES: list[Schema] = [r.crd() for r in rules.METADATA_RULES]

# Fields compared by the immutability rules get defaults so `self.x == oldSelf.x` never reads an
# absent field (CEL errors with "no such key" instead of comparing).
_SPEC_DEFAULTS: dict[str, Any] = {"image": "", "nodePool": "", "command": [], "args": []}


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    if "$ref" in node:
        target = dict(defs[node["$ref"].split("/")[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        target.update(extra)
        return target
    return node


def _default_object(node: Schema) -> Schema:
    """The object the API server would build from nested defaults (CEL sees it complete)."""
    out: Schema = {}
    for name, sub in (node.get("properties") or {}).items():
        if "default" in sub:
            out[name] = copy.deepcopy(sub["default"])  # no shared objects: no YAML anchors
    return out


def structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Convert one pydantic JSON-schema node into a Kubernetes structural schema node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in schema: {node}")
        merged = dict(_resolve(options[0], defs))
        merged.update({k: v for k, v in node.items() if k != "anyOf"})
        node = merged
    out: Schema = {k: v for k, v in node.items() if k in _KEEP}
    if out.get("default", 0) is None:
        del out["default"]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props:
            required = set(node.get("required", []))
            out["properties"] = {}
            for name, sub in props.items():
                conv = structural(sub, defs)
                if (
                    conv.get("properties")
                    and name not in required
                    and "default" not in conv
                    and not conv.get("required")
                ):
                    conv["default"] = _default_object(conv)
                out["properties"][name] = conv
            if required:
                out["required"] = sorted(required)
        elif extra is True or extra is None:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            out["additionalProperties"] = structural(extra, defs)
    elif kind == "array":
        out["items"] = structural(node.get("items", {}), defs)
    elif "enum" in node and "type" not in out:
        out["type"] = "string"
    if "type" not in out and "x-kubernetes-preserve-unknown-fields" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _model_schema(model: type[BaseModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def spec_schema() -> Schema:
    schema = _model_schema(trainingjob.TrainingJobSpec)
    schema["description"] = "Desired state: what to run, how it is parallelised, its policies."
    for field, default in _SPEC_DEFAULTS.items():
        schema["properties"][field]["default"] = default
    schema["properties"]["parallelism"]["x-kubernetes-validations"] = PARALLELISM_RULES
    schema["x-kubernetes-validations"] = SPEC_RULES
    return schema


def template_schema(description: str) -> Schema:
    """The TrainingJob spec as a template inside another resource: its cross-field CEL rules but
    not its transition rules (`oldSelf`), since a template may change (the next child uses it)."""
    template = spec_schema()
    template["x-kubernetes-validations"] = [r.crd() for r in rules.SPEC_RULES]
    template["description"] = description
    return template


def status_schema() -> Schema:
    return status_schema_of(trainingjob.TrainingJobStatus)


def status_schema_of(model: type[BaseModel]) -> Schema:
    """A status written only by the operator: conditions as a map by type, no defaults."""
    schema = _model_schema(model)
    schema["description"] = "Observed state, written by the operator."
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status"]
    for sub in schema["properties"].values():
        sub.pop("default", None)
    return schema


AGE_COLUMN: Schema = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
MESSAGE_COLUMN: Schema = {
    "name": "Message",
    "type": "string",
    "jsonPath": ".status.message",
    "priority": 1,
}

# `kubectl scale tj/<name> --replicas=N` (and a HorizontalPodAutoscaler) set the desired size; the
# API server still runs the transition rules, so only an elastic job resizes while it runs.
SCALE: Schema = {
    "specReplicasPath": ".spec.parallelism.nodes",
    "statusReplicasPath": ".status.currentNodes",
    "labelSelectorPath": ".status.selector",
}

PRINTER_COLUMNS: list[Schema] = [
    {"name": "Layout", "type": "string", "jsonPath": ".spec.parallelism.layout"},
    {
        "name": "Nodes",
        "type": "integer",
        "jsonPath": ".spec.parallelism.nodes",
        "description": "Worker nodes asked for (an elastic job's desired size)",
    },
    {
        "name": "Up",
        "type": "integer",
        "jsonPath": ".status.currentNodes",
        "description": "Worker nodes running now (an elastic world trains with fewer)",
    },
    {
        "name": "GPUs",
        "type": "integer",
        "jsonPath": ".spec.resources.gpus",
        "description": "GPUs per node",
    },
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Step", "type": "integer", "jsonPath": ".status.progress.step"},
    {"name": "Loss", "type": "number", "jsonPath": ".status.progress.metrics.loss"},
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts"},
    {
        "name": "Counted",
        "type": "integer",
        "jsonPath": ".status.restartsCountedTowardsMax",
        "description": "Restarts counted against runPolicy.maxRestarts (disruptions are not)",
        "priority": 1,
    },
    {"name": "ETA", "type": "string", "jsonPath": ".status.progress.eta"},
    AGE_COLUMN,
    MESSAGE_COLUMN,
]


def build_crd() -> Schema:
    """The whole CustomResourceDefinition object."""
    return custom_resource(
        trainingjob,
        "A distributed PyTorch training job run as a supervised gang of pods.",
        spec_schema(),
        status_schema(),
        PRINTER_COLUMNS,
        ROOT_RULES,
        scale=SCALE,
    )


class ResourceNames(Protocol):
    """A resource's names: the constants of its module in trainforge_api."""

    KIND: str
    PLURAL: str
    SINGULAR: str
    SHORT_NAMES: list[str]
    CATEGORIES: list[str]


def custom_resource(
    names: ResourceNames,
    description: str,
    spec: Schema,
    status: Schema,
    columns: list[Schema],
    root_rules: list[Schema] | None = None,
    scale: Schema | None = None,
) -> Schema:
    """A namespaced CustomResourceDefinition of the group: one served and stored version with a
    status subresource (and a `scale` one if given), printer columns, and `root_rules` (CEL on
    the whole object) if any."""
    root: Schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if root_rules is not None:
        root["x-kubernetes-validations"] = root_rules
    subresources: Schema = {"status": {}}
    if scale is not None:
        subresources["scale"] = scale
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{names.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "trainforge"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.KIND,
                "listKind": f"{names.KIND}List",
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": names.SHORT_NAMES,
                "categories": names.CATEGORIES,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render_yaml(crd: Schema) -> str:
    header = "# Generated by hack/gen_crds.py from api/trainforge_api. DO NOT EDIT.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)


# --- the field tables of docs/api-reference.md ----------------------------------------------------

REFERENCE_BEGIN = "<!-- BEGIN GENERATED FIELD REFERENCE (hack/gen_crds.py) -->"
REFERENCE_END = "<!-- END GENERATED FIELD REFERENCE -->"


def _type_of(node: Schema) -> str:
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return "object (free-form)"
    kind = str(node.get("type", "any"))
    if kind == "array":
        return f"[]{_type_of(node.get('items', {}))}"
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map[string]{_type_of(node['additionalProperties'])}"
    return kind


def _rows(node: Schema, prefix: str, templates: Collection[str] = ()) -> list[str]:
    """One row per field, depth first; an embedded TrainingJob spec (`templates`) is one row."""
    rows: list[str] = []
    for name, sub in (node.get("properties") or {}).items():
        path = f"{prefix}.{name}"
        default = sub.get("default")
        shown = "" if default is None or default == {} else f"`{json.dumps(default)}`"
        limits = []
        if "minimum" in sub:
            limits.append(f"≥ {sub['minimum']}")
        if "maximum" in sub:
            limits.append(f"≤ {sub['maximum']}")
        desc = str(sub.get("description", "")).replace("\n", " ").replace("|", "\\|")
        extra = f" ({', '.join(limits)})" if limits else ""
        if name in templates:
            extra += " A TrainingJob spec: its fields and rules are the TrainingJob's (above)."
        rows.append(f"| `{path}` | {_type_of(sub)} | {shown} | {desc}{extra} |")
        item = sub.get("items", {})
        if name in templates:
            continue
        if sub.get("properties"):
            rows.extend(_rows(sub, path))
        elif item.get("properties"):
            rows.extend(_rows(item, f"{path}[]"))
    return rows


def _rules(node: Schema, templates: Collection[str] = ()) -> list[Schema]:
    """Every CEL rule of the schema, outer ones first, not those inside `templates`."""
    found: list[Schema] = list(node.get("x-kubernetes-validations") or [])
    for name, sub in (node.get("properties") or {}).items():
        if name not in templates:
            found.extend(_rules(sub, templates))
    items = node.get("items")
    if isinstance(items, dict):
        found.extend(_rules(items, templates))
    return found


def reference_markers(kind: str) -> tuple[str, str]:
    """The comments around a resource's generated block (the TrainingJob's kept their name)."""
    if kind == trainingjob.KIND:
        return REFERENCE_BEGIN, REFERENCE_END
    return (
        f"<!-- BEGIN GENERATED {kind} FIELD REFERENCE (hack/gen_crds.py) -->",
        f"<!-- END GENERATED {kind} FIELD REFERENCE -->",
    )


def render_reference(crd: Schema, templates: Collection[str] = ()) -> str:
    """Markdown tables of every spec and status field and every CEL rule, from the generated
    schema; `templates` name embedded TrainingJob specs, shown as one row each."""
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    begin, end = reference_markers(crd["spec"]["names"]["kind"])
    head = ["| Field | Type | Default | Description |", "|---|---|---|---|"]

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    rule_rows = [f"| `{esc(r['rule'])}` | {esc(r['message'])} |" for r in _rules(root, templates)]
    parts = [
        begin,
        "### spec",
        "",
        *head,
        *_rows(root["properties"]["spec"], "spec", templates),
        "",
        "### status",
        "",
        *head,
        *_rows(root["properties"]["status"], "status"),
        "",
        "### Validation rules (CEL, enforced by the API server)",
        "",
        "| Rule | Message |",
        "|---|---|",
        *rule_rows,
        end,
    ]
    return "\n".join(parts)


def update_reference(text: str, crd: Schema, templates: Collection[str] = ()) -> str:
    """Replace the resource's generated block in docs/api-reference.md (appended under a
    `## <Kind> field reference` heading when missing); the text around it is kept."""
    block = render_reference(crd, templates)
    begin, end = reference_markers(crd["spec"]["names"]["kind"])
    if begin in text and end in text:
        before = text.split(begin)[0]
        after = text.split(end, 1)[1]
        return before + block + after
    kind = crd["spec"]["names"]["kind"]
    return text.rstrip("\n") + f"\n\n## {kind} field reference\n\n" + block + "\n"
