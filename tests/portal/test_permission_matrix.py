"""Each built-in role against each protected page and API endpoint: allowed and denied."""

import pytest

PAGES = {
    # url template -> personas allowed (everyone else gets 403 or 404)
    "/{space}/": {"administrator", "space_manager", "deployment_creator", "project_viewer", "environment_manager"},
    "/configuration/users/": {"administrator"},
    "/configuration/audit/": {"administrator", "space_manager", "environment_manager"},
    "/configuration/teams/": {"administrator", "space_manager", "deployment_creator", "project_viewer"},
    "/profile/": {
        "administrator",
        "space_manager",
        "deployment_creator",
        "project_viewer",
        "environment_manager",
        "outsider",
    },
}

API_READS = {
    "/api/users/me": {
        "administrator",
        "space_manager",
        "deployment_creator",
        "project_viewer",
        "environment_manager",
        "outsider",
    },
    "/api/spaces/{space}": {
        "administrator",
        "space_manager",
        "deployment_creator",
        "project_viewer",
        "environment_manager",
    },
    "/api/users": {
        "administrator",
        "space_manager",
        "deployment_creator",
        "project_viewer",
        "environment_manager",
        "outsider",
    },
    "/api/events": {
        "administrator",
        "space_manager",
        "deployment_creator",
        "project_viewer",
        "environment_manager",
        "outsider",
    },
    # Roles: UserRoleView, or TeamEdit in a space (a space manager grants roles to its teams).
    "/api/userroles": {"administrator", "space_manager"},
    "/api/userroles/all": {"administrator", "space_manager"},
    "/api/{space}/tasks": {
        "administrator",
        "space_manager",
        "deployment_creator",
        "project_viewer",
        "environment_manager",
    },
    "/api/{space}/workerpools": {"administrator", "space_manager", "environment_manager"},
    "/api/workerpools/all": {"administrator", "space_manager", "environment_manager"},
    "/api/{space}/projects": {"administrator", "space_manager", "deployment_creator", "project_viewer"},
    "/api/{space}/environments": {
        "administrator",
        "space_manager",
        "deployment_creator",
        "project_viewer",
        "environment_manager",
    },
}

PERSONAS = ["administrator", "space_manager", "environment_manager", "deployment_creator", "project_viewer", "outsider"]


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("url", list(PAGES))
def test_pages_are_open_only_to_the_roles_that_grant_them(request, page_client, space, persona, url):
    user = request.getfixturevalue(persona)
    response = page_client(user).get(url.format(space=space.octopus_id))
    if persona in PAGES[url]:
        assert response.status_code == 200, response.content[:300]
    else:
        assert response.status_code in (403, 404)


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("url", list(API_READS))
def test_api_reads_are_open_only_to_the_roles_that_grant_them(request, api_client, space, persona, url):
    user = request.getfixturevalue(persona)
    response = api_client(user).get(url.format(space=space.octopus_id))
    if persona in API_READS[url]:
        assert response.status_code == 200, response.content[:300]
    else:
        assert response.status_code in (403, 404)


def test_an_outsider_sees_no_space(api_client, outsider, space):
    response = api_client(outsider).get("/api/spaces")
    assert response.json()["TotalResults"] == 0
    assert api_client(outsider).get(f"/api/spaces/{space.octopus_id}").status_code == 404


@pytest.mark.parametrize("url", ["/api/spaces", "/api/teams", "/api/events", "/api/tasks", "/api/users/me/apikeys"])
def test_a_user_with_no_roles_lists_nothing_but_their_own(api_client, outsider, administrator, space, url):
    from portal.services import teams

    teams.create_team(actor=administrator, name="Somebody else's", space=space)
    body = api_client(outsider).get(url).json()
    assert body["TotalResults"] == (1 if url.endswith("apikeys") else 0), body  # the key the client itself signs with


def test_only_users_with_user_view_list_every_user(api_client, administrator, project_viewer):
    assert api_client(administrator).get("/api/users").json()["TotalResults"] >= 2
    mine = api_client(project_viewer).get("/api/users").json()
    assert [u["Username"] for u in mine["Items"]] == ["viewer"]


@pytest.mark.parametrize("persona,allowed", [("administrator", True), ("space_manager", False), ("outsider", False)])
def test_creating_a_space_needs_space_create(request, api_client, persona, allowed):
    user = request.getfixturevalue(persona)
    response = api_client(user).post("/api/spaces", {"Name": f"Made by {persona}"}, format="json")
    assert response.status_code == (201 if allowed else 403)


@pytest.mark.parametrize(
    "persona,allowed",
    [("administrator", True), ("space_manager", True), ("deployment_creator", False), ("outsider", False)],
)
def test_creating_a_space_team_needs_team_edit_in_that_space(request, api_client, space, persona, allowed):
    user = request.getfixturevalue(persona)
    response = api_client(user).post("/api/teams", {"Name": "Ops", "SpaceId": space.octopus_id}, format="json")
    assert response.status_code == (201 if allowed else 403 if persona != "outsider" else 404), response.content


@pytest.mark.parametrize("persona,allowed", [("administrator", True), ("space_manager", False)])
def test_creating_a_system_team_needs_configure_server(request, api_client, persona, allowed):
    user = request.getfixturevalue(persona)
    response = api_client(user).post("/api/teams", {"Name": "Everywhere"}, format="json")
    assert response.status_code == (201 if allowed else 403)


@pytest.mark.parametrize("persona,allowed", [("administrator", True), ("space_manager", False), ("outsider", False)])
def test_adding_users_on_the_users_page_needs_user_edit(request, page_client, persona, allowed):
    user = request.getfixturevalue(persona)
    response = page_client(user).post("/configuration/users/", {"username": "newcomer", "password": "Correct-horse-42"})
    assert response.status_code == (302 if allowed else 403)


def test_a_space_managers_role_does_not_reach_another_space(page_client, api_client, space_manager, other_space):
    assert page_client(space_manager).get(f"/{other_space.octopus_id}/").status_code == 404
    assert api_client(space_manager).get(f"/api/spaces/{other_space.octopus_id}").status_code == 404


def test_the_django_admin_is_for_system_administrators_only(page_client, administrator, space_manager):
    assert page_client(space_manager).get("/admin/").status_code == 302  # to the admin login
    assert page_client(administrator).get("/admin/").status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(client, space):
    response = client.get(f"/{space.octopus_id}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/api/users/me").status_code == 401
