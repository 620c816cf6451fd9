"""Spaces, teams and API keys edited in /admin/ go through the portal's services: validated, audited, and a
refusal is a form error, not a 500."""

import pytest

from portal.models import ApiKey, Event, Space, Team
from portal.services import api_keys
from tests.conftest import make_person

pytestmark = pytest.mark.django_db

ADMIN = "/admin/portal/"


def _events(document):
    return list(Event.objects.filter(document_id=document.octopus_id).order_by("id").values_list("category", flat=True))


def test_a_space_added_renamed_and_deleted_in_the_admin_is_audited_by_the_space_services(
    page_client, administrator, space
):
    client = page_client(administrator)
    assert client.post(ADMIN + "space/add/", {"name": "Platform", "description": ""}).status_code == 302
    platform = Space.objects.get(name="Platform")
    assert platform.slug == "platform"  # the service chose it
    assert (
        client.post(
            ADMIN + f"space/{platform.pk}/change/", {"name": "Platform team", "description": "Ours"}
        ).status_code
        == 302
    )
    platform.refresh_from_db()
    assert platform.name == "Platform team"
    assert client.post(ADMIN + f"space/{platform.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Space.objects.filter(pk=platform.pk).exists()
    assert _events(platform) == ["Created", "Modified", "Deleted"]


def test_the_default_space_cannot_be_deleted_from_the_admin(page_client, administrator, space):
    response = page_client(administrator).post(ADMIN + f"space/{space.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert Space.objects.filter(pk=space.pk).exists()


def test_a_team_made_in_the_admin_gives_its_members_their_permissions_and_a_taken_name_is_a_form_error(
    page_client, administrator, space
):
    member = make_person("ops-member", None, space)
    client = page_client(administrator)
    response = client.post(
        ADMIN + "team/add/", {"name": "Ops", "description": "", "space": space.pk, "members": [member.pk]}
    )
    assert response.status_code == 302
    ops = Team.objects.get(name="Ops")
    assert list(ops.group.user_set.all()) == [member]  # guardian's group follows the members, as on the Teams page
    assert _events(ops) == ["Created"]

    response = client.post(ADMIN + "team/add/", {"name": "ops", "description": "", "space": space.pk, "members": []})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert Team.objects.filter(name__iexact="ops").count() == 1


def test_an_api_key_is_revoked_in_the_admin_through_the_service_and_never_edited(page_client, administrator):
    key, _ = api_keys.create_api_key(actor=administrator, user=administrator, purpose="CI")
    client = page_client(administrator)
    response = client.post(ADMIN + "apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked is not None
    assert client.post(ADMIN + f"apikey/{key.pk}/change/", {"purpose": "changed"}).status_code == 403
    assert ApiKey.objects.get(pk=key.pk).purpose == "CI"
    assert Event.objects.filter(category="ApiKeyRevoked", user=administrator).exists()
