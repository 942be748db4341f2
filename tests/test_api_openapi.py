"""The System API's OpenAPI document and its reference page."""

from __future__ import annotations

import re

from flask import Flask
from openapi_spec_validator import validate

from scimbridge.api.operations import OPERATIONS
from scimbridge.api.problems import PROBLEM_TYPES
from scimbridge.api.reference import inline
from scimbridge.service.clients.tokens import SCOPES

from .api_support import api_app

__all__ = ["api_app"]


def test_the_document_is_valid_openapi_3_1_and_public(api_app: Flask) -> None:
    response = api_app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "http://scim.test/api/v1"}]
    validate(document)


def test_every_route_of_the_blueprint_is_documented(api_app: Flask) -> None:
    document = api_app.test_client().get("/api/v1/openapi.json").get_json()
    documented = {
        (method.upper(), re.sub(r"{(\w+)}", r"<resource_id:\1>", f"/api/v1{path}"))
        for path, methods in document["paths"].items()
        for method in methods
    }
    routed = {
        (method, rule.rule)
        for rule in api_app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        and rule.endpoint
        not in {"api.not_found", "api.openapi_document", "api.reference", "api.reference_css"}
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    assert documented == routed
    assert len(documented) == len(OPERATIONS)


def test_every_operation_documents_its_refusals_as_problems(api_app: Flask) -> None:
    document = api_app.test_client().get("/api/v1/openapi.json").get_json()
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            name = f"{method.upper()} {path}"
            [scope] = operation["security"][0]["apiToken"]
            assert scope in SCOPES, name
            expected = {"401", "403", "429"}
            if "{" in path:
                expected.add("404")
            if "requestBody" in operation:
                expected |= {"400", "413", "415", "422"}
            if any(p["in"] == "query" for p in operation.get("parameters", [])):
                expected.add("422")
            assert expected <= set(responses), name
            for status, response in responses.items():
                if status == "414":
                    # The HTTP server's own refusal of an overlong request line.
                    assert "content" not in response and "parameters" in operation, name
                elif int(status) >= 400:
                    media = response["content"]["application/problem+json"]
                    assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
                else:
                    assert 200 <= int(status) < 300, name


def test_request_schemas_come_from_the_pydantic_models(api_app: Flask) -> None:
    document = api_app.test_client().get("/api/v1/openapi.json").get_json()
    create = document["components"]["schemas"]["CreateUserRequest"]
    assert create["required"] == ["email"]
    assert create["additionalProperties"] is False
    assert create["properties"]["email"]["format"] == "email"
    listing = document["paths"]["/users"]["get"]["parameters"]
    limit = next(p for p in listing if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
    assert limit["description"] == "Items per page."
    assert all("null" not in str(p["schema"]) for p in listing)


def test_the_reference_page_is_rendered_on_the_server_without_scripts(api_app: Flask) -> None:
    response = api_app.test_client().get("/api/v1/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page), "no external resource"
    for spec in OPERATIONS:
        assert f'id="{spec.operation_id}"' in page
    for problem in PROBLEM_TYPES.values():
        assert problem.uri in page
    stylesheet = api_app.test_client().get("/api/v1/docs.css")
    assert stylesheet.status_code == 200 and stylesheet.mimetype == "text/css"


def test_reference_markup_escapes_before_it_marks_up() -> None:
    assert str(inline("use `<b>` and **bold**")) == (
        "use <code>&lt;b&gt;</code> and <strong>bold</strong>"
    )
