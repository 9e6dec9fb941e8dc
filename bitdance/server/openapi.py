"""The published /openapi.json as a contract: what the server accepts, and only responses that happen.

FastAPI's generated schema is post-processed once:
- bounds pydantic leaves as "ge"/"le"/"gt"/"lt" (on validator-wrapped types) become JSON-Schema keywords;
- the generation body states its rules: a prompt (non-blank) or a template, not both; variables only
  with a template, and per template the variable names, which are required and how long they may be;
- FastAPI's 422 (never sent: validation errors answer 400) is removed; 400 is documented where a body
  or query can be invalid, 413 on bodies, 401 only when the server has API keys.
"""

from typing import Any

from fastapi import FastAPI

from ..core.blank import NON_BLANK_PATTERN
from .requests import variable_limit

RENAMES = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
NON_BLANK = NON_BLANK_PATTERN  # "has a non-blank character", the same set as the server's is_blank
ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def _keywords(node: Any, in_properties: bool = False) -> Any:
    """Rename pydantic's constraint names to JSON Schema's (not inside `properties`, whose keys are names)."""
    if isinstance(node, list):
        return [_keywords(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        key = k if in_properties else RENAMES.get(k, k)
        out[key] = _keywords(v, in_properties=(k == "properties" and not in_properties))
    if out.get("type") == "integer":
        for k in ("minimum", "maximum"):
            if isinstance(out.get(k), float) and out[k].is_integer():
                out[k] = int(out[k])
    return out


def _strings(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The string schemas directly in `schema` (itself, its anyOf members, array items)."""
    found = []
    for s in [schema, *schema.get("anyOf", [])]:
        if s.get("type") == "string":
            found.append(s)
        if s.get("type") == "array" and isinstance(s.get("items"), dict):
            found.extend(_strings(s["items"]))
    return found


def _drop_null(prop: dict[str, Any]) -> None:
    """A field that may be left out but not sent as null (the server would treat null as absent)."""
    if "anyOf" in prop:
        prop["anyOf"] = [s for s in prop["anyOf"] if s.get("type") != "null"]
        if len(prop["anyOf"]) == 1:
            prop.update(prop.pop("anyOf")[0])
    prop.pop("default", None)


def generation_rules(
    body: dict[str, Any], templates: list[dict[str, Any]], prompt_limit: int, max_sets: int, value_limit: int
) -> None:
    """Write the prompt / template / variables rules into a generation body schema (in place)."""
    props = body["properties"]
    for name in ("prompt", "negative_prompt"):
        if name in props:
            for s in _strings(props[name]):
                s["pattern"] = NON_BLANK
    for name in ("prompt", "template", "variables"):
        if name in props:
            _drop_null(props[name])
    rules: list[dict[str, Any]] = [
        {"anyOf": [{"required": ["prompt"]}, {"required": ["template"]}]},
        {"not": {"required": ["prompt", "template"]}},
    ]
    per_template: list[dict[str, Any]] = [{"not": {"required": ["template"]}}]
    for t in templates:
        names = list(t["variables"])
        need = [v for v in names if v not in t["defaults"]]
        each = variable_limit(t["template"], names, prompt_limit, value_limit)
        one = {
            "type": "object",
            "properties": {v: {"type": "string", "pattern": NON_BLANK, "maxLength": each} for v in names},
            "required": need,
            "additionalProperties": False,
        }
        branch: dict[str, Any] = {
            "properties": {
                "template": {"const": t["name"]},
                "variables": {
                    "anyOf": [one, {"type": "array", "items": one, "minItems": 1, "maxItems": max_sets}]
                },
            },
            "required": ["template", "variables"] if need else ["template"],
        }
        per_template.append(branch)
    rules.append({"anyOf": per_template})
    body["allOf"] = rules
    body["dependentRequired"] = {"variables": ["template"]}


def contract_openapi(
    app: FastAPI,
    templates: list[dict[str, Any]],
    prompt_limit: int,
    max_sets: int,
    value_limit: int,
    auth: bool,
    protected: tuple[str, ...],
    open_prefixes: tuple[str, ...],
) -> None:
    """Replace `app.openapi` with the post-processed contract (built once, then cached)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = _keywords(generate())
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            comps.pop(name, None)
        for name in ("ImageRequest", "JobRequest"):
            if name in comps:
                generation_rules(comps[name], templates, prompt_limit, max_sets, value_limit)
        for path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                responses = op.setdefault("responses", {})
                responses.pop("422", None)
                for code in ("400", "401", "413"):
                    responses.pop(code, None)
                queries = [p for p in op.get("parameters", []) if p.get("in") == "query"]
                if "requestBody" in op or queries:
                    responses["400"] = {
                        "description": "invalid request (param names the field)",
                        "content": ERROR_REF,
                    }
                if method == "post":
                    responses["413"] = {"description": "request body too large", "content": ERROR_REF}
                if auth and path.startswith(protected) and not path.startswith(open_prefixes):
                    responses["401"] = {"description": "missing or wrong API key", "content": ERROR_REF}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
