"""Accounts: secrets are write-only. They are stored encrypted, never rendered back, and an empty field keeps them."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from infrastructure.models import Account
from infrastructure.services.accounts import account_secrets, save_account


@pytest.fixture
def base(space):
    return f"/{space.octopus_id}/infrastructure/accounts/"


def _private_key() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        .decode()
    )


def test_a_password_account_is_saved_and_its_password_never_shown_again(page_client, environment_manager, space, base):
    client = page_client(environment_manager)
    response = client.post(
        base, {"name": "deploy", "account_type": "UsernamePassword", "username": "deploy", "password": "pw-Sekrit-1"}
    )
    account = Account.objects.get(space=space, name="deploy")
    assert response.status_code == 302 and account_secrets(account)["password"] == "pw-Sekrit-1"
    for page in (base, base + f"{account.pk}/"):
        html = client.get(page).content.decode()
        assert "pw-Sekrit-1" not in html and account.password_encrypted not in html and "•••• stored" in html


def test_an_ssh_key_is_never_rendered_back_and_an_empty_field_keeps_it(page_client, environment_manager, space, base):
    key = _private_key()
    client = page_client(environment_manager)
    client.post(base, {"name": "keys", "account_type": "SshKeyPair", "username": "root", "private_key": key})
    account = Account.objects.get(name="keys")
    edit = client.get(base + f"{account.pk}/").content.decode()
    assert "OPENSSH PRIVATE KEY-----\n" not in edit and key.splitlines()[1] not in edit and "•••• stored" in edit
    response = client.post(
        base + f"{account.pk}/", {"name": "keys", "username": "deploy", "private_key": "", "passphrase": ""}
    )
    account.refresh_from_db()
    assert (
        response.status_code == 302 and account.username == "deploy" and account_secrets(account)["private_key"] == key
    )


def test_a_token_can_be_replaced(page_client, environment_manager, administrator, space, base):
    account = save_account(actor=administrator, space=space, name="api", account_type="Token", password="old-token")
    page_client(environment_manager).post(base + f"{account.pk}/", {"name": "api", "password": "new-token"})
    account.refresh_from_db()
    assert account_secrets(account)["password"] == "new-token"


@pytest.mark.parametrize(
    "data,field,message",
    [
        (
            {"name": "k", "account_type": "SshKeyPair", "username": "root", "private_key": "no-such-key-material"},
            "private_key",
            "not a private key",
        ),
        ({"name": "k", "account_type": "SshKeyPair", "username": "root"}, "private_key", "needs a private key"),
        (
            {"name": "k", "account_type": "UsernamePassword", "password": "pw"},
            "username",
            "SSH accounts need a username",
        ),
        ({"name": "", "account_type": "Token", "password": "t"}, "name", "required"),
    ],
)
def test_bad_input_is_a_400_with_the_error_on_the_field_and_nothing_saved(
    page_client, environment_manager, base, data, field, message
):
    response = page_client(environment_manager).post(base, data)
    html = response.content.decode()
    assert response.status_code == 400 and f'data-field="{field}">' in html and message in html
    assert "no-such-key-material" not in html  # a posted secret is not echoed back either
    assert not Account.objects.exists()


def test_an_account_in_use_is_not_deleted(page_client, environment_manager, administrator, space, base):
    from infrastructure.models import WorkerPool
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker

    account = save_account(
        actor=administrator, space=space, name="deploy", account_type="UsernamePassword", username="d", password="p"
    )
    register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="ssh-01",
            worker_pools=[WorkerPool.objects.get(space=space, is_default=True)],
            endpoint=Endpoint("Ssh", host="10.0.0.5", port=22, account=account, fingerprint="SHA256:" + "A" * 43),
        ),
    )
    response = page_client(environment_manager).post(base + f"{account.pk}/delete/", follow=True)
    assert (
        "deploy is used by these workers: ssh-01." in response.content.decode()
        and Account.objects.filter(pk=account.pk).exists()
    )
