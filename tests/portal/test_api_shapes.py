"""The API speaks Octopus: Links, paged collections, PascalCase fields, string ids, its error shape."""

import pytest


def test_the_api_root_lists_links_without_signing_in(client, db):
    body = client.get("/api").json()
    assert body["Application"] == "Reef"
    assert body["Links"]["Spaces"].startswith("/api/spaces") and body["Links"]["CurrentUser"] == "/api/users/me"


def test_collections_are_paged_as_octopus_pages_them(api_client, administrator):
    client = api_client(administrator)
    for n in range(3):
        client.post("/api/spaces", {"Name": f"Space {n}"}, format="json")
    body = client.get("/api/spaces?skip=1&take=2").json()
    assert set(body) >= {
        "ItemType",
        "TotalResults",
        "ItemsPerPage",
        "NumberOfPages",
        "LastPageNumber",
        "Items",
        "Links",
    }
    assert (body["ItemType"], body["TotalResults"], body["ItemsPerPage"], body["NumberOfPages"]) == ("Space", 4, 2, 2)
    assert len(body["Items"]) == 2
    assert len(client.get("/api/spaces/all").json()) == 4


def test_a_space_resource_has_octopus_fields(api_client, administrator, space):
    body = api_client(administrator).get(f"/api/spaces/{space.octopus_id}").json()
    assert body["Id"] == space.octopus_id and body["Id"].startswith("Spaces-")
    assert set(body) >= {"Name", "Slug", "Description", "IsDefault", "TaskQueueStopped", "Links"}
    assert body["Links"]["Self"] == f"/api/spaces/{space.octopus_id}"


def test_ids_and_partial_name_filter_collections(api_client, administrator, space):
    client = api_client(administrator)
    client.post("/api/spaces", {"Name": "Staging"}, format="json")
    assert [s["Name"] for s in client.get("/api/spaces?partialName=stag").json()["Items"]] == ["Staging"]
    assert [s["Id"] for s in client.get(f"/api/spaces?ids={space.octopus_id}").json()["Items"]] == [space.octopus_id]


def test_current_user_and_teams_have_octopus_shapes(api_client, administrator, space):
    client = api_client(administrator)
    me = client.get("/api/users/me").json()
    assert me["Id"] == administrator.octopus_id and me["IsRequestor"] is True and "ApiKeys" in me["Links"]
    team = client.post(
        "/api/teams",
        {"Name": "Shape", "SpaceId": space.octopus_id, "MemberUserIds": [administrator.octopus_id]},
        format="json",
    ).json()
    assert team["MemberUserIds"] == [administrator.octopus_id] and team["SpaceId"] == space.octopus_id
    roles = client.get("/api/userroles/all").json()
    assert {"System administrator", "Space manager", "Deployment creator", "Project viewer"} <= {
        r["Name"] for r in roles
    }


def test_the_openapi_schema_and_its_docs_are_served(client, db):
    schema = client.get("/api/schema")
    assert schema.status_code == 200 and b"/api/spaces" in schema.content and b"X-Octopus-ApiKey" in schema.content
    assert client.get("/api/schema/docs").status_code == 200


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "Name"),
        ({"Name": ""}, "Name"),
        ({"Name": "x" * 101}, "Name"),
        ({"Name": "Default"}, "Name"),  # taken
    ],
)
def test_bad_space_input_is_a_400_naming_the_field_and_changes_nothing(api_client, administrator, body, field):
    from portal.models import Space

    before = Space.objects.count()
    response = api_client(administrator).post("/api/spaces", body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert data["ErrorMessage"] and field in data["Details"] and any(e.startswith(field) for e in data["Errors"])
    assert Space.objects.count() == before


def test_malformed_json_is_a_400_not_a_500(api_client, administrator):
    response = api_client(administrator).generic("POST", "/api/spaces", "{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.json()["ErrorMessage"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/spaces/Spaces-999999",
        "/api/spaces/nonsense",
        "/api/teams/Teams-x",
        "/api/users/Users-0",
        "/api/events/Events-99999999999999999999999",
    ],
)
def test_unknown_ids_are_404(api_client, administrator, url):
    response = api_client(administrator).get(url)
    assert response.status_code == 404 and response.json()["ErrorMessage"]


@pytest.mark.parametrize("query", ["skip=-1", "take=lots", "skip=1e3"])
def test_bad_paging_is_a_400_naming_the_parameter(api_client, administrator, query):
    response = api_client(administrator).get(f"/api/spaces?{query}")
    assert response.status_code == 400 and query.split("=")[0] in response.json()["Details"]


def test_a_team_member_id_that_does_not_exist_is_a_400(api_client, administrator, space):
    response = api_client(administrator).post(
        "/api/teams", {"Name": "T", "SpaceId": space.octopus_id, "MemberUserIds": ["Users-424242"]}, format="json"
    )
    assert response.status_code == 400 and "MemberUserIds[0]" in response.json()["Details"]


def test_the_default_space_cannot_be_deleted(api_client, administrator, space):
    response = api_client(administrator).delete(f"/api/spaces/{space.octopus_id}")
    assert response.status_code == 400 and "default space" in response.json()["Errors"][0]
