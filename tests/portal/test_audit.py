"""Every configuration change is recorded: who, when, what changed; listed on the page and at /api/events."""

from portal.models import Event


def test_creating_and_renaming_a_team_records_who_and_what(api_client, administrator, space):
    client = api_client(administrator)
    team = client.post("/api/teams", {"Name": "Ops", "SpaceId": space.octopus_id}, format="json").json()
    client.put(f"/api/teams/{team['Id']}", {"Name": "Operations", "SpaceId": space.octopus_id}, format="json")
    created, modified = Event.objects.filter(document_id=team["Id"]).order_by("occurred", "id")
    assert (created.category, created.username) == ("Created", "administrator")
    assert modified.category == "Modified" and modified.changes["name"] == ["Ops", "Operations"]


def test_deleting_a_team_is_recorded(api_client, administrator, space):
    client = api_client(administrator)
    team = client.post("/api/teams", {"Name": "Short-lived", "SpaceId": space.octopus_id}, format="json").json()
    assert client.delete(f"/api/teams/{team['Id']}").status_code == 204
    assert Event.objects.filter(document_id=team["Id"], category="Deleted").exists()


def test_events_api_filters_by_category_and_document(api_client, administrator, space):
    client = api_client(administrator)
    team = client.post("/api/teams", {"Name": "Filtered", "SpaceId": space.octopus_id}, format="json").json()
    body = client.get(f"/api/events?regarding={team['Id']}&eventCategories=Created").json()
    assert body["TotalResults"] == 1
    event = body["Items"][0]
    assert event["RelatedDocumentIds"] == [team["Id"]] and event["Username"] == "administrator"
    assert event["SpaceId"] == space.octopus_id and event["Id"].startswith("Events-")


def test_a_member_of_one_space_does_not_see_anothers_events(api_client, administrator, space_manager, other_space):
    api_client(administrator).post("/api/teams", {"Name": "Secret", "SpaceId": other_space.octopus_id}, format="json")
    messages = [e["Message"] for e in api_client(space_manager).get("/api/events?take=500").json()["Items"]]
    assert not any("Secret" in m for m in messages)


def test_the_audit_page_filters_by_category(page_client, administrator, space):
    client = page_client(administrator)
    client.post("/configuration/spaces/", {"name": "Audited space"})
    page = client.get("/configuration/audit/", {"category": "Created", "q": "Audited"})
    assert page.status_code == 200
    assert [e.document_name for e in page.context["page"]] == ["Audited space"]


def test_the_audit_page_explains_a_bad_date_with_400(page_client, administrator):
    response = page_client(administrator).get("/configuration/audit/", {"since": "yesterday-ish"})
    assert response.status_code == 400 and "Enter a valid date/time" in response.content.decode()


def test_failed_logins_are_recorded(client, administrator):
    client.post("/accounts/login/", {"username": "administrator", "password": "wrong"})
    assert Event.objects.filter(category="LoginFailed", document_name="administrator").exists()
