"""The OpenAPI document: FastAPI's, plus bearer security and each blueprint's own body.

Which features a decision body needs depends on its blueprint, which pydantic models
fixed at import cannot say; the document is built for the blueprints this server
loaded, so a client (or a generator such as schemathesis) sees, per blueprint, the
feature names and JSON types the SDK's checks will accept.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from looper_common.contracts.blueprint import Blueprint
from looper_common.serve.auth import OPEN_PATHS

_JSON_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "category": "string"}


def features_schema(blueprint: Blueprint) -> dict[str, Any]:
    """JSON Schema of a feature map for ``blueprint``: every declared feature, its type, nothing else."""
    return {
        "type": "object",
        "properties": {f.name: {"type": _JSON_TYPES[f.type]} for f in blueprint.features},
        "required": [f.name for f in blueprint.features],
        "additionalProperties": False,
    }


def _variant(generic: dict[str, Any], name: str, blueprint: Blueprint, item: dict[str, Any] | None) -> dict[str, Any]:
    """A request body for one blueprint: its name fixed, its features (or its items' features) typed."""
    variant = copy.deepcopy(generic)
    variant["title"] = f"{generic['title']} ({name})"
    variant["properties"]["blueprint"] = {"type": "string", "const": name}
    if item is None:
        variant["properties"]["features"] = features_schema(blueprint)
    else:
        typed = copy.deepcopy(item)
        typed["properties"]["features"] = features_schema(blueprint)
        variant["properties"]["requests"]["items"] = typed
    return variant


def build_document(app: FastAPI, blueprints: Mapping[str, Blueprint]) -> dict[str, Any]:
    """The document served at /openapi.json (built once)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in doc["paths"].items():
        if path not in OPEN_PATHS:
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
    models = doc["components"]["schemas"]
    for model, item in (("DecisionRequest", None), ("DecisionBatchRequest", models.pop("BatchItem"))):
        generic = models[model]
        variants = [_variant(generic, name, bp, item) for name, bp in sorted(blueprints.items())]
        models[model] = {"title": generic["title"], "oneOf": variants}
    observation = models["ObservationRequest"]["properties"]["blueprint"]
    observation["anyOf"] = [{"type": "string", "enum": sorted(blueprints)}, {"type": "null"}]
    app.openapi_schema = doc
    return doc
