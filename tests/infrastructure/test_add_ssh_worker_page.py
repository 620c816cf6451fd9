"""Adding an SSH worker: Reef connects, shows the host key's fingerprint, and saves the worker with that
fingerprint pinned only once the user confirms it. The host is a real SSH server on loopback (paramiko)."""

import io
import shutil
import socket
import subprocess
import threading

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.accounts import save_account


class _SshServer(paramiko.ServerInterface):
    """Completes the key exchange; authenticates nobody (discovery never signs in)."""

    def get_allowed_auths(self, username):
        return "publickey"


@pytest.fixture
def ssh_host():
    """An SSH server on 127.0.0.1 with its own Ed25519 host key; yields (port, public key in OpenSSH form)."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    host_key = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            try:
                transport.start_server(server=_SshServer())
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], f"{host_key.get_name()} {host_key.get_base64()}"
    stop.set()
    listener.close()


@pytest.fixture
def form(space, administrator, ssh_host):
    account = save_account(
        actor=administrator,
        space=space,
        name="deploy",
        account_type="UsernamePassword",
        username="deploy",
        password="secret",
    )
    return {
        "name": "ssh-01",
        "worker_pool_ids": [WorkerPool.objects.get(space=space, is_default=True).pk],
        "machine_policy_id": space.machine_policies.get().pk,
        "host": "127.0.0.1",
        "port": ssh_host[0],
        "account_id": account.pk,
    }


def _ssh_keygen_fingerprint(public_key: str, tmp_path) -> str:
    path = tmp_path / "host_key.pub"
    path.write_text(public_key + "\n")
    return subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout.split()[
        1
    ]


def test_discovering_shows_the_fingerprint_as_ssh_keygen_prints_it_and_saves_nothing(
    page_client, environment_manager, space, form, ssh_host, tmp_path
):
    url = f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/"
    response = page_client(environment_manager).post(url, {**form, "discover": "1"})
    html = response.content.decode()
    fingerprint = response.context["discovered"]["fingerprint"]
    assert response.status_code == 200 and fingerprint.startswith("SHA256:") and "=" not in fingerprint
    if shutil.which("ssh-keygen"):
        assert fingerprint == _ssh_keygen_fingerprint(ssh_host[1], tmp_path)
    assert f'value="{fingerprint}"' in html and 'name="confirm_fingerprint"' in html and "ssh-ed25519" in html
    assert not Worker.objects.exists()


def test_the_worker_is_saved_with_the_fingerprint_pinned_only_after_it_is_confirmed(
    page_client, environment_manager, space, form
):
    client = page_client(environment_manager)
    url = f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/"
    discovered = client.post(url, {**form, "discover": "1"}).context["form"].initial
    confirm = {
        **form,
        "fingerprint": discovered["fingerprint"],
        "discovered_endpoint": discovered["discovered_endpoint"],
        "add": "1",
    }

    unconfirmed = client.post(url, confirm)
    assert (
        unconfirmed.status_code == 400
        and 'data-field="confirm_fingerprint">Tick this box' in unconfirmed.content.decode()
    )
    assert not Worker.objects.exists()

    confirmed = client.post(url, {**confirm, "confirm_fingerprint": "on"})
    worker = Worker.objects.get(name="ssh-01")
    assert confirmed.status_code == 302 and confirmed["Location"].endswith(f"/infrastructure/workers/{worker.pk}/")
    assert (worker.communication_style, worker.host, worker.port, worker.fingerprint) == (
        "Ssh",
        "127.0.0.1",
        form["port"],
        discovered["fingerprint"],
    )
    assert worker.account.name == "deploy"


def test_changing_the_host_after_discovery_asks_to_discover_again(page_client, environment_manager, space, form):
    client = page_client(environment_manager)
    url = f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/"
    discovered = client.post(url, {**form, "discover": "1"}).context["form"].initial
    response = client.post(
        url,
        {
            **form,
            "host": "other.example.com",
            "fingerprint": discovered["fingerprint"],
            "discovered_endpoint": discovered["discovered_endpoint"],
            "confirm_fingerprint": "on",
            "add": "1",
        },
    )
    assert response.status_code == 400 and "discover the host key again" in response.content.decode()
    assert not Worker.objects.exists()


def test_an_unreachable_host_is_a_form_error_not_a_500(page_client, environment_manager, space, form):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    response = page_client(environment_manager).post(
        f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/", {**form, "port": closed_port, "discover": "1"}
    )
    assert response.status_code == 400
    assert 'data-field="host">Could not connect to ssh://127.0.0.1:' in response.content.decode()
    assert not Worker.objects.exists()


def test_something_that_is_not_an_ssh_server_is_a_form_error_too(page_client, environment_manager, space, form):
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(
        target=lambda: listener.accept()[0].sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n") or None, daemon=True
    ).start()
    try:
        response = page_client(environment_manager).post(
            f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/",
            {**form, "port": listener.getsockname()[1], "discover": "1"},
        )
    finally:
        listener.close()
    assert response.status_code == 400 and "did not complete an SSH handshake" in response.content.decode()


def test_missing_or_bad_fields_are_400s_before_any_connection(page_client, environment_manager, space, form):
    client = page_client(environment_manager)
    url = f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/"
    no_account = client.post(url, {**{k: v for k, v in form.items() if k != "account_id"}, "discover": "1"})
    assert no_account.status_code == 400 and 'data-field="account_id"' in no_account.content.decode()
    bad_host = client.post(url, {**form, "host": "not a host!", "discover": "1"})
    assert bad_host.status_code == 400 and "is not a valid host name or address" in bad_host.content.decode()
    assert not Worker.objects.exists()


def test_a_space_without_ssh_accounts_is_told_to_add_one(page_client, environment_manager, space):
    html = (
        page_client(environment_manager)
        .get(f"/{space.octopus_id}/infrastructure/workers/new/linux/ssh/")
        .content.decode()
    )
    assert 'id="no-ssh-accounts"' in html and f"/{space.octopus_id}/infrastructure/accounts/" in html
