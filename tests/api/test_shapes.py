"""Shapes are declared once: the served OpenAPI document is what the API enforces."""

from __future__ import annotations

from typing import Any

from mschat.api import shapes
from mschat.api.openapi import REQUESTS
from mschat.core.rules import MAX_TEMPERATURE, MAX_TOKENS_LIMIT
from tests.api.conftest import LiveApi


def bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """The option of a (nullable) property that carries its limits."""
    for option in [schema, *schema.get("anyOf", [])]:
        if "maximum" in option or "maxLength" in option:
            return option
    return {}


def number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


async def test_the_document_describes_the_shapes(api: LiveApi):
    document = (await api.client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    schemas = document["components"]["schemas"]
    for model in REQUESTS:
        assert set(schemas[model.__name__]["properties"]) == {
            field.alias or name for name, field in model.model_fields.items()
        }
    patch = schemas["UserPatch"]["properties"]
    assert bounded(patch["max_tokens"])["maximum"] == MAX_TOKENS_LIMIT
    assert bounded(patch["temperature"])["maximum"] == MAX_TEMPERATURE
    assert bounded(schemas["ChatRequest"]["properties"]["user"])["maxLength"] == shapes.MAX_NAME
    parameters = document["paths"]["/users/{user}/sessions"]["get"]["parameters"]
    assert {
        p["name"]: p["schema"]["maximum"] for p in parameters if p["name"] != "include_public"
    } == {
        "limit": shapes.MAX_PAGE,
        "offset": shapes.MAX_OFFSET,
    }


async def test_every_documented_limit_is_the_enforced_one(api: LiveApi):
    """At each documented bound a PATCH /users/{user} field is taken; one past, it is a
    400 naming the field and both bounds."""
    document = (await api.client.get("/openapi.json")).json()
    properties = document["components"]["schemas"]["UserPatch"]["properties"]
    checked = []
    for name, schema in properties.items():
        limits = bounded(schema)
        if "maximum" in limits:
            low, high = limits["minimum"], limits["maximum"]
            for good in (low, high):
                response = await api.client.patch("/users/lim", json={name: good})
                # taken (a session id may then be missing: 404, not a 400)
                assert response.status_code in (200, 404), (name, good, response.text)
            for bad in (low - 1, high + 1):
                response = await api.client.patch("/users/lim", json={name: bad})
                assert response.status_code == 400, (name, bad)
                error = response.json()["error"]
                assert error["param"] == name
                assert f"from {number(low)} to {number(high)}" in error["message"]
            checked.append(name)
        elif "maxLength" in limits and name == "name":
            longest = "n" * limits["maxLength"]
            assert (await api.client.patch("/users/lim", json={name: longest})).status_code == 200
            response = await api.client.patch("/users/lim", json={name: longest + "n"})
            assert response.status_code == 400 and response.json()["error"]["param"] == name
            checked.append(name)
    assert sorted(checked) == ["current_session", "max_tokens", "name", "temperature"]
