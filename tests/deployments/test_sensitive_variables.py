"""Sensitive variables are write-only: encrypted at rest, shown as ******** everywhere, never rendered back
(not even a refused post), redacted in audit events; left blank when editing, the stored value is kept."""

import pytest

from deployments.models import Variable
from deployments.services import catalog
from portal.encryption import decrypt
from portal.models import Event

pytestmark = pytest.mark.django_db
SECRET = "hunter2-Very-Secret"


def test_a_sensitive_value_is_encrypted_and_never_shown_again(page_client, administrator, project):
    client = page_client(administrator)
    base = f"/{project.space.octopus_id}/projects/{project.pk}/variables/"
    assert client.post(base, {"name": "DbPassword", "type": "Sensitive", "value": SECRET}).status_code == 302
    variable = Variable.objects.get()
    assert SECRET not in variable.value and decrypt(variable.value) == SECRET
    for url in (base, base + f"{variable.pk}/", f"/{project.space.octopus_id}/projects/{project.pk}/"):
        html = client.get(url).content.decode()
        assert SECRET not in html and variable.value not in html, url
    assert "********" in client.get(base).content.decode()
    edit = client.get(base + f"{variable.pk}/").content.decode()
    assert 'type="password"' in edit and "Leave blank to keep it" in edit


def test_editing_with_a_blank_value_keeps_the_stored_one_and_a_new_value_replaces_it(
    page_client, administrator, project, production
):
    variable = catalog.save_variable(
        actor=administrator, project=project, name="ApiKey", type="Sensitive", value=SECRET
    )
    client = page_client(administrator)
    url = f"/{project.space.octopus_id}/projects/{project.pk}/variables/{variable.pk}/"
    assert (
        client.post(
            url, {"name": "ApiKey", "type": "Sensitive", "value": "", "environments": [production.pk]}
        ).status_code
        == 302
    )
    variable.refresh_from_db()
    assert decrypt(variable.value) == SECRET and list(variable.environments.all()) == [production]
    client.post(url, {"name": "ApiKey", "type": "Sensitive", "value": "rotated-key"})
    variable.refresh_from_db()
    assert decrypt(variable.value) == "rotated-key"


def test_a_refused_post_does_not_echo_the_secret(page_client, administrator, project):
    response = page_client(administrator).post(
        f"/{project.space.octopus_id}/projects/{project.pk}/variables/",
        {"name": "", "type": "Sensitive", "value": SECRET},
    )
    assert response.status_code == 400 and SECRET not in response.content.decode()
    assert not Variable.objects.exists()


def test_audit_events_redact_sensitive_values_but_not_text_ones(administrator, project):
    variable = catalog.save_variable(
        actor=administrator, project=project, name="ApiKey", type="Sensitive", value=SECRET
    )
    catalog.save_variable(
        actor=administrator, project=project, variable=variable, name="ApiKey", type="Sensitive", value="second-Secret"
    )
    catalog.save_variable(actor=administrator, project=project, name="Url", type="String", value="https://example.com")
    events = Event.objects.filter(document_type="Variable")
    recorded = " ".join(str(e.changes) + e.message for e in events)
    assert SECRET not in recorded and "second-Secret" not in recorded and variable.value not in recorded
    assert "********" in recorded and "https://example.com" in recorded
