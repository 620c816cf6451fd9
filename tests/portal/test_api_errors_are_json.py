"""Under /api every answer is JSON in Octopus's error shape, whoever refuses: no route (404), a method the
resource does not take (405), a media type it does not parse (415), a body over Django's limit (413 naming the
limit), no or a bad API key (401). Pages keep their HTML pages."""

import pytest

pytestmark = pytest.mark.django_db


def error_of(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["ErrorMessage"], str) and body["ErrorMessage"] and isinstance(body["Errors"], list)
    return body


@pytest.mark.parametrize(
    "path", ["/api/nothing/here", "/api/Spaces-1/nothing", "/api/users/me/x/y", "/api/spaces/Spaces-99"]
)
def test_unknown_paths_are_a_json_404(api_client, administrator, path):
    assert error_of(api_client(administrator).get(path), 404)["ErrorMessage"]


def test_an_unknown_api_path_is_json_for_a_browser_session_too(page_client, administrator):
    assert (
        error_of(page_client(administrator).get("/api/no-such-thing"), 404)["ErrorMessage"]
        == "The resource you requested was not found."
    )


def test_a_wrong_method_is_a_json_405_with_allow(api_client, administrator):
    response = api_client(administrator).delete("/api/users/me")
    error_of(response, 405)
    assert "GET" in response["Allow"]


def test_an_unsupported_media_type_is_a_json_415(api_client, administrator):
    response = api_client(administrator).post("/api/teams", "<team/>", content_type="application/xml")
    assert "application/xml" in error_of(response, 415)["ErrorMessage"]


def test_a_body_over_djangos_limit_is_a_json_413_naming_it(api_client, administrator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api_client(administrator).post(
        "/api/teams", '{"Name": "' + "x" * 5000 + '"}', content_type="application/json"
    )
    assert error_of(response, 413)["ErrorMessage"] == "The request body is larger than the limit of 1 KiB (1024 bytes)."


def test_a_form_over_djangos_limit_on_a_page_is_a_413_page(page_client, administrator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = page_client(administrator).post("/configuration/teams/", {"name": "x" * 5000})
    assert response.status_code == 413 and "limit of 1 KiB" in response.content.decode()


def test_no_key_and_a_bad_key_are_a_json_401(client):
    error_of(client.get("/api/users/me"), 401)
    assert "not valid" in error_of(client.get("/api/users/me", HTTP_X_OCTOPUS_APIKEY="API-NOPE"), 401)["ErrorMessage"]


def test_pages_keep_their_html_404(page_client, administrator):
    response = page_client(administrator).get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "query, field", [("skip=99999999999999999999", "skip"), ("take=-1", "take"), ("skip=ten", "skip")]
)
def test_paging_past_what_the_database_takes_is_a_400_naming_the_parameter(api_client, administrator, query, field):
    assert field in error_of(api_client(administrator).get(f"/api/spaces?{query}"), 400)["Details"]


def test_task_arguments_that_are_not_an_object_are_a_400(api_client, administrator):
    """Found by schemathesis: Arguments sent as a form field (text) was a 500."""
    response = api_client(administrator).post(
        "/api/tasks", {"Name": "Health", "Arguments": '{"MachineIds": []}'}, format="multipart"
    )
    assert "Arguments" in error_of(response, 400)["Details"]
