"""The readable reference of the System API: the OpenAPI document laid out for a template.

Descriptions use two bits of Markdown (`code` and **strong**); they are escaped first, then
marked up, so nothing in the document can inject HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from markupsafe import Markup
from markupsafe import escape

from .problems import ProblemType

Token = tuple[str, str | None]
"""A piece of a type label: its text, and the schema it links to (or None)."""


@dataclass
class ParameterRow:
    """One parameter of an operation."""

    name: str
    location: str
    type: list[Token]
    required: bool
    description: Markup


@dataclass
class ResponseRow:
    """One answer of an operation."""

    status: str
    description: Markup
    media_type: str | None
    schema: str | None


@dataclass
class OperationEntry:
    """One operation."""

    anchor: str
    method: str
    path: str
    summary: str
    description: list[Markup]
    scope: str | None
    parameters: list[ParameterRow]
    body: str | None
    responses: list[ResponseRow]


@dataclass
class TagSection:
    """The operations of one tag."""

    name: str
    description: Markup
    operations: list[OperationEntry] = field(default_factory=list)


@dataclass
class FieldRow:
    """One member of a schema."""

    name: str
    type: list[Token]
    required: bool
    description: Markup
    constraints: str


@dataclass
class SchemaEntry:
    """One schema of the components."""

    name: str
    description: Markup
    fields: list[FieldRow]


def inline(text: str) -> Markup:
    """Escape ``text``, then render its `code` and **strong** spans."""
    html = str(escape(text))
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
    return Markup(html)


def paragraphs(text: str) -> list[Markup]:
    """Split text into rendered paragraphs at blank lines."""
    return [inline(" ".join(part.split())) for part in text.split("\n\n") if part.strip()]


def type_label(schema: dict[str, Any]) -> list[Token]:
    """Describe a JSON schema in a few words, linking referenced schemas."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return [(name, name)]
    if "anyOf" in schema:
        tokens: list[Token] = []
        for index, option in enumerate(schema["anyOf"]):
            if index:
                tokens.append((" or ", None))
            tokens += type_label(option)
        return tokens
    if "enum" in schema:
        return [(" | ".join(f'"{value}"' for value in schema["enum"]), None)]
    kind = schema.get("type")
    if kind == "array":
        return [("array of ", None), *type_label(schema.get("items", {}))]
    if kind == "object" and "additionalProperties" in schema:
        return [("object", None)]
    if isinstance(kind, str):
        suffix = f" ({schema['format']})" if "format" in schema else ""
        return [(kind + suffix, None)]
    return [("any", None)]


_CONSTRAINTS = (
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("default", "default {}"),
)


def constraints(schema: dict[str, Any]) -> str:
    """Describe a schema's bounds and default."""
    found = schema
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            found = {**option, **{k: v for k, v in schema.items() if k != "anyOf"}}
    return ", ".join(
        text.format(found[key]) for key, text in _CONSTRAINTS if found.get(key) is not None
    )


def _schema_name(content: dict[str, Any] | None) -> tuple[str | None, str | None]:
    for media_type, entry in (content or {}).items():
        ref = entry.get("schema", {}).get("$ref")
        return media_type, str(ref).rsplit("/", 1)[-1] if ref else None
    return None, None


def _operation(path: str, method: str, spec: dict[str, Any]) -> OperationEntry:
    security = spec.get("security") or []
    scopes = [
        scope for requirement in security for names in requirement.values() for scope in names
    ]
    parameters = [
        ParameterRow(
            name=parameter["name"],
            location=parameter["in"],
            type=type_label(parameter.get("schema", {})),
            required=bool(parameter.get("required")),
            description=inline(
                " ".join(
                    part
                    for part in (
                        parameter.get("description", ""),
                        constraints(parameter.get("schema", {})),
                    )
                    if part
                )
            ),
        )
        for parameter in spec.get("parameters", [])
    ]
    _, body = _schema_name(spec.get("requestBody", {}).get("content"))
    responses = []
    for status, response in spec["responses"].items():
        media_type, schema = _schema_name(response.get("content"))
        responses.append(ResponseRow(status, inline(response["description"]), media_type, schema))
    description = str(spec.get("description", "")).split("\n\nNeeds the ")[0]
    return OperationEntry(
        anchor=str(spec["operationId"]),
        method=method.upper(),
        path=path,
        summary=str(spec.get("summary", "")),
        description=paragraphs(description),
        scope=scopes[0] if scopes else None,
        parameters=parameters,
        body=body,
        responses=responses,
    )


def _schema(name: str, schema: dict[str, Any]) -> SchemaEntry:
    required = set(schema.get("required", []))
    return SchemaEntry(
        name=name,
        description=inline(str(schema.get("description", ""))),
        fields=[
            FieldRow(
                name=member,
                type=type_label(definition),
                required=member in required,
                description=inline(str(definition.get("description", ""))),
                constraints=constraints(definition),
            )
            for member, definition in schema.get("properties", {}).items()
        ],
    )


def reference_context(
    document: dict[str, Any], problem_types: dict[str, ProblemType]
) -> dict[str, Any]:
    """Return what the reference template shows of an OpenAPI document."""
    sections = {
        tag["name"]: TagSection(tag["name"], inline(tag.get("description", "")))
        for tag in document.get("tags", [])
    }
    for path, methods in document["paths"].items():
        for method, spec in methods.items():
            tag = spec.get("tags", ["Other"])[0]
            section = sections.setdefault(tag, TagSection(tag, Markup("")))
            section.operations.append(_operation(path, method, spec))
    components = document.get("components", {})
    scheme: dict[str, Any] = next(iter(components.get("securitySchemes", {}).values()), {})
    return {
        "title": document["info"]["title"],
        "version": document["info"]["version"],
        "introduction": paragraphs(document["info"].get("description", "")),
        "server": document.get("servers", [{}])[0].get("url", ""),
        "authentication": inline(scheme.get("description", "")),
        "sections": [section for section in sections.values() if section.operations],
        "schemas": [
            _schema(name, schema) for name, schema in components.get("schemas", {}).items()
        ],
        "problems": sorted(problem_types.values(), key=lambda p: (p.status, p.slug)),
        "problem_description": inline,
    }
