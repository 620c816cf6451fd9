"""API keys: shown once, stored hashed, accepted in X-Octopus-ApiKey, expiring, revocable."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from portal.models import ApiKey, Event
from portal.services.api_keys import hash_api_key


def test_a_key_created_through_the_api_is_shown_once_and_stored_hashed(api_client, project_viewer):
    client = api_client(project_viewer)
    created = client.post("/api/users/me/apikeys", {"Purpose": "deploy script"}, format="json")
    assert created.status_code == 201
    key = created.json()["ApiKey"]
    assert key.startswith("API-") and len(key) == 36
    stored = ApiKey.objects.get(purpose="deploy script")
    assert stored.key_hash == hash_api_key(key) and key not in str(stored.__dict__)
    listed = client.get(f"/api/users/{project_viewer.octopus_id}/apikeys").json()["Items"]
    assert key not in str(listed) and any(item["ApiKey"].endswith(key[-4:]) for item in listed)


def test_the_header_authenticates_as_the_keys_owner(api_client, project_viewer):
    response = api_client(project_viewer).get("/api/users/me")
    assert response.json()["Username"] == "viewer"


def test_a_wrong_key_is_refused_with_401(space):
    client = APIClient()
    client.credentials(HTTP_X_OCTOPUS_APIKEY="API-NOTAREALKEY")
    response = client.get("/api/users/me")
    assert response.status_code == 401
    assert "not valid" in response.json()["ErrorMessage"]


def test_an_expired_key_is_refused(project_viewer):
    from portal.services.api_keys import create_api_key

    api_key, key = create_api_key(
        actor=project_viewer, user=project_viewer, purpose="short-lived", expires=timezone.now() + timedelta(minutes=5)
    )
    ApiKey.objects.filter(pk=api_key.pk).update(expires=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_X_OCTOPUS_APIKEY=key)
    assert client.get("/api/users/me").status_code == 401


def test_an_expiry_in_the_past_is_a_400_naming_the_field(api_client, project_viewer):
    response = api_client(project_viewer).post(
        "/api/users/me/apikeys", {"Purpose": "x", "Expires": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert "Expires" in response.json()["Details"]


def test_a_revoked_key_stops_working_and_the_revocation_is_audited(project_viewer):
    from portal.services.api_keys import create_api_key

    api_key, key = create_api_key(actor=project_viewer, user=project_viewer, purpose="to revoke")
    client = APIClient()
    client.credentials(HTTP_X_OCTOPUS_APIKEY=key)
    assert client.get("/api/users/me").status_code == 200
    assert client.delete(f"/api/users/me/apikeys/{api_key.octopus_id}").status_code == 204
    assert client.get("/api/users/me").status_code == 401
    assert Event.objects.filter(category="ApiKeyRevoked", message__contains="to revoke").exists()


def test_a_key_of_a_deactivated_user_is_refused(api_client, project_viewer):
    client = api_client(project_viewer)
    project_viewer.is_active = False
    project_viewer.save()
    assert client.get("/api/users/me").status_code == 401


def test_nobody_may_make_keys_for_someone_else_without_user_edit(api_client, project_viewer, space_manager):
    response = api_client(space_manager).post(
        f"/api/users/{project_viewer.octopus_id}/apikeys", {"Purpose": "sneaky"}, format="json"
    )
    assert response.status_code == 404


def test_the_profile_page_shows_a_new_key_once(page_client, project_viewer):
    client = page_client(project_viewer)
    created = client.post("/profile/apikeys/", {"purpose": "from the page"})
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    key = created.context["plain_key"]
    assert key in created.content.decode()
    assert key not in client.get("/profile/").content.decode()
    assert "…" + key[-4:] in client.get("/profile/").content.decode()


def test_the_profile_page_refuses_an_empty_purpose_with_400(page_client, project_viewer):
    response = page_client(project_viewer).post("/profile/apikeys/", {"purpose": ""})
    assert response.status_code == 400
    assert not ApiKey.objects.filter(user=project_viewer).exists()


def test_the_create_api_key_command_prints_a_working_key(project_viewer, capsys):
    call_command("create_api_key", "--user", "viewer", "--purpose", "automation")
    key = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_X_OCTOPUS_APIKEY=key)
    assert client.get("/api/users/me").json()["Username"] == "viewer"


def test_the_create_api_key_command_names_an_unknown_user(db):
    with pytest.raises(CommandError, match="No active user named 'ghost'"):
        call_command("create_api_key", "--user", "ghost", "--purpose", "x")
