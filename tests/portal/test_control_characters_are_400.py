"""NUL and other control characters are bad input: every API route and every page answers 400 naming the field,
never a 500 from PostgreSQL. The walks cover every route in the URLconf, so a new endpoint is covered too."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

PARAMS = [
    "partialName",
    "name",
    "ids",
    "filter",
    "skip",
    "take",
    "q",
    "states",
    "project",
    "from",
    "users",
    "spaces",
    "healthStatuses",
    "thumbprint",
    "accountType",
    "after",
    "tail",
]


def routes(resolver=None, prefix: str = ""):
    """(path regex, callback) of every route, with nested includes joined."""
    for pattern in (resolver or get_resolver()).url_patterns:
        regex = prefix + pattern.pattern.regex.pattern.lstrip("^").rstrip("$").removesuffix(r"\Z")
        if isinstance(pattern, URLResolver):
            yield from routes(pattern, regex)
        elif isinstance(pattern, URLPattern):
            yield regex, pattern.callback


def concrete(regex: str, space) -> str:
    path = re.sub(r"\(\?P<space_id>[^)]*\)|<space:space_id>", space.octopus_id, regex)
    path = re.sub(r"\(\?P<user_id>[^)]*\)", "me", path)
    path = re.sub(r"\(\?P<[a-z_]+>[^)]*\)|<(int:)?[a-z_]+>", "1", path)
    path = re.sub(r"\(\?P<format>[^)]*\)", "", path)
    return "/" + path.replace("\\.", ".").replace("\\", "").replace("^", "").replace("$", "").replace("?", "")


def api_get_routes(space) -> list[str]:
    found = []
    for regex, callback in routes():
        actions = getattr(callback, "actions", None) or {}
        if not regex.startswith("api/") or "format" in regex or (actions and "get" not in actions):
            continue
        found.append(concrete(regex, space))
    return sorted(set(found))


def test_every_api_route_refuses_control_characters_in_every_query_parameter(api_client, administrator, space):
    client = api_client(administrator)
    paths = api_get_routes(space)
    assert len(paths) > 40 and "/api/Spaces-1/projects" in paths and "/api/userroles" in paths
    for path in paths:
        response = client.get(path, {name: "a\x00b" for name in PARAMS})
        assert response.status_code == 400, (path, response.status_code)
        body = response.json()
        assert set(body["Details"]) == set(PARAMS), (path, body)
        assert body["ErrorMessage"] == "There was a problem with your request." and body["Errors"]
        escape = client.get(path, {"partialName": "\x1b[31mred"})
        assert escape.status_code == 400 and "partialName" in escape.json()["Details"], path


def test_the_issues_examples(api_client, page_client, administrator, space):
    response = api_client(administrator).get(f"/api/{space.octopus_id}/projects?partialName=%00")
    assert response.status_code == 400
    assert response.json()["Errors"] == ["partialName: Control characters (such as NUL) are not allowed here."]
    page = page_client(administrator).get("/configuration/users/?q=%00")
    assert (
        page.status_code == 400 and "q: Control characters (such as NUL) are not allowed here." in page.content.decode()
    )


def test_every_page_refuses_control_characters_in_its_search_and_filter_parameters(page_client, administrator, space):
    client = page_client(administrator)
    paths = sorted(
        {concrete(regex, space) for regex, _ in routes() if not regex.startswith(("api", "admin", "static"))}
    )
    assert len(paths) > 40
    for path in paths:
        response = client.get(path, {"q": "\x00", "name": "x\x07", "states": "Queued", "page": "1"})
        assert response.status_code == 400, (path, response.status_code)
        text = response.content.decode()
        assert "q: Control characters" in text and "name: Control characters" in text, path


def test_a_control_character_in_the_address_is_400(api_client, administrator):
    response = api_client(administrator).get("/api/projects/Projects-1%00")
    assert response.status_code == 400 and "path" in response.json()["Details"]


@pytest.mark.parametrize("value, field", [("a\x00b", "Name"), ("a\x01b", "Name"), ("\ud800", "Name")])
def test_every_api_body_refuses_control_characters_and_lone_surrogates(api_client, administrator, space, value, field):
    client = api_client(administrator)
    checked = 0
    for regex, callback in routes():
        actions = getattr(callback, "actions", None) or {}
        if not regex.startswith("api/") or "format" in regex or actions.get("post") != "create":
            continue
        body = json.dumps({field: value, "Description": "fine\nand\tfine"})  # escapes a lone surrogate as \\ud800
        response = client.post(concrete(regex, space), body, content_type="application/json")
        assert response.status_code == 400, (regex, response.content)
        assert field in response.json()["Details"], (regex, response.json())
        checked += 1
    assert checked >= 10


def test_a_multi_line_body_field_keeps_its_line_breaks(api_client, administrator, space):
    response = api_client(administrator).post(
        "/api/teams", {"Name": "Ops", "Description": "one\r\ntwo\tthree", "SpaceId": space.octopus_id}, format="json"
    )
    assert response.status_code == 201 and response.json()["Description"] == "one\r\ntwo\tthree"


def test_a_page_form_shows_the_field_error(page_client, administrator, space):
    from portal.models import Team

    response = page_client(administrator).post("/configuration/teams/", {"name": "Ops\x00", "space": space.pk})
    assert response.status_code == 400 and "Control characters" in response.content.decode()
    assert not Team.objects.filter(name__startswith="Ops").exists()
