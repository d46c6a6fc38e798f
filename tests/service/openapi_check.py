"""A small JSON-schema checker for the subset the service's OpenAPI document uses."""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,),
}


class SchemaMismatch(AssertionError):
    pass


def check(document: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> None:
    """Raise SchemaMismatch naming the first place `value` breaks `schema`."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        check(document, document["components"]["schemas"][name], value, where)
        return
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                check(document, option, value, where)
                matches += 1
            except SchemaMismatch:
                pass
        if matches != 1:
            raise SchemaMismatch(f"{where}: matches {matches} of oneOf, not exactly 1")
        return
    if value is None and schema.get("nullable") is True:  # OpenAPI 3.0's null
        return
    kind = schema.get("type")
    if kind is not None:
        is_bool = isinstance(value, bool)
        if not isinstance(value, _TYPES[kind]) or (is_bool and kind != "boolean"):
            raise SchemaMismatch(f"{where}: {value!r} is not {kind}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaMismatch(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise SchemaMismatch(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        raise SchemaMismatch(f"{where}: {value} < {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise SchemaMismatch(f"{where}: {value} > {schema['maximum']}")
    if kind == "object":
        _check_object(document, schema, value, where)
    if kind == "array":
        for index, item in enumerate(value):
            check(document, schema.get("items", {}), item, f"{where}[{index}]")


def _check_object(document: dict[str, Any], schema: dict[str, Any], value: dict[str, Any],
                  where: str) -> None:
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            raise SchemaMismatch(f"{where}: missing {name}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            check(document, properties[name], item, f"{where}.{name}")
        elif extra is False:
            raise SchemaMismatch(f"{where}: unexpected field {name}")
        elif isinstance(extra, dict):  # a map: every value follows one schema
            check(document, extra, item, f"{where}.{name}")


def response_schema(document: dict[str, Any], path: str, method: str, status: int
                    ) -> dict[str, Any] | None:
    """The JSON schema the document gives for this answer; None for non-JSON answers."""
    template = "/content/{contentId}/{path}" if path.startswith("/content/") else path
    operation = document["paths"][template][method.lower()]
    response = operation["responses"].get(str(status))
    if response is None:
        raise SchemaMismatch(f"{method} {template}: status {status} is not documented")
    media = response.get("content", {}).get("application/json")
    return None if media is None else dict(media["schema"])
