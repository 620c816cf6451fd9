"""Signing in: real passwords, rate-limited attempts, secure by default."""

from tests.conftest import PASSWORD


def test_a_user_signs_in_and_lands_on_the_default_space(client, project_viewer, space):
    response = client.post("/accounts/login/", {"username": "viewer", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == f"/{space.octopus_id}/"
    assert "Your permissions here" in response.content.decode()


def test_repeated_failures_lock_the_account_for_that_address(client, project_viewer):
    for _ in range(5):
        client.post("/accounts/login/", {"username": "viewer", "password": "wrong"})
    locked = client.post("/accounts/login/", {"username": "viewer", "password": PASSWORD})
    assert locked.status_code == 429 and "Too many failed sign-in attempts" in locked.content.decode()


def test_a_weak_password_is_refused_with_the_reason(page_client, administrator):
    response = page_client(administrator).post("/configuration/users/", {"username": "weak", "password": "password"})
    assert response.status_code == 400
    assert "too common" in response.content.decode()


def test_a_user_without_any_space_is_sent_to_the_profile_page(client, outsider):
    client.force_login(outsider, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == "/profile/"
    assert "do not have access to any space" in response.content.decode()


def test_forms_refuse_posts_without_a_csrf_token(administrator):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(administrator, backend="django.contrib.auth.backends.ModelBackend")
    assert client.post("/configuration/spaces/", {"name": "No token"}).status_code == 403
