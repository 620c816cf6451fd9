"""The Add Worker wizard's commands carry the address agents must use and the polling port the server
really listens on; when the server can only be reached on loopback, the page says what to set for a
worker on a second host."""

import socket

import pytest


@pytest.fixture
def wizard(page_client, environment_manager, space):
    client = page_client(environment_manager)
    client.base = f"/{space.octopus_id}/infrastructure/workers/new/linux/"
    return client


def test_the_polling_command_carries_the_polling_port_the_server_uses(wizard, settings):
    settings.REEF_POLLING_PORT = 20943
    html = wizard.get(wizard.base + "polling/").content.decode()
    assert "--polling --polling-address https://testserver:20943/<" in html
    assert 'id="polling-port">20943<' in html and "10943" not in html


def test_a_public_url_is_the_address_in_every_command_and_in_the_install_script(wizard, client, settings):
    settings.REEF_PUBLIC_URL, settings.REEF_BIND = "https://reef.example.com", "0.0.0.0"
    html = wizard.get(wizard.base + "polling/").content.decode()
    assert (
        "curl -fsSL https://reef.example.com/infrastructure/tentacle/install.sh | sudo bash -s -- "
        "--server https://reef.example.com "
    ) in html
    assert "--polling-address https://reef.example.com:10943/<" in html and "testserver" not in html
    assert 'id="second-host"' not in html  # reachable from elsewhere: nothing to advise
    script = client.get("/infrastructure/tentacle/install.sh").content.decode()
    assert 'BUNDLE_URL="https://reef.example.com/infrastructure/tentacle/reef-tentacle.pyz"' in script
    assert 'POLLING_PORT="10943"' in script


def test_on_localhost_the_page_says_what_a_second_host_needs(wizard, settings):
    settings.REEF_POLLING_PORT, settings.ALLOWED_HOSTS = 20943, ["localhost", "127.0.0.1", "[::1]"]  # the defaults
    html = wizard.get(wizard.base + "polling/", HTTP_HOST="127.0.0.1:8000").content.decode()
    host = socket.gethostname()
    assert "--server http://127.0.0.1:8000 " in html and "--polling-address https://127.0.0.1:20943/<" in html
    assert 'id="second-host"' in html and "cannot reach this server yet" in html
    assert "this machine&#x27;s own loopback address" in html and "Reef listens on 127.0.0.1 only (REEF_BIND)" in html
    advice = html.split('id="second-host-settings">')[1].split("</pre>")[0]
    assert advice.splitlines() == [
        "REEF_BIND=0.0.0.0",
        f"ALLOWED_HOSTS=localhost,127.0.0.1,[::1],{host}",
        f"REEF_PUBLIC_URL=http://{host}:8000",
    ]
    assert f'id="second-host-polling">{host}:20943<' in html and "REEF_POLLING_PORT" in html


def test_a_server_listening_on_loopback_is_named_even_when_reached_by_name(wizard, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "reef.internal"]
    html = wizard.get(wizard.base + "listening/", HTTP_HOST="reef.internal").content.decode()
    advice = html.split('id="second-host-settings">')[1].split("</pre>")[0]
    assert advice.splitlines() == ["REEF_BIND=0.0.0.0"]  # the name is already allowed and is the address agents use
    assert "this server must reach the worker on port 10933" in html and "loopback address" not in html


def test_behind_a_proxy_a_loopback_bind_needs_no_advice(wizard, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.REEF_PUBLIC_URL = "https://reef.example.com"
    html = wizard.get(wizard.base + "listening/").content.decode()
    assert 'id="second-host"' not in html and "--server https://reef.example.com " in html


def test_the_install_script_defaults_the_polling_address_to_the_servers_polling_port(client, settings):
    settings.REEF_POLLING_PORT = 20943
    script = client.get("/infrastructure/tentacle/install.sh").content.decode()
    assert 'POLLING_PORT="20943"' in script and "https://SERVER-HOST:20943/" in script


def test_a_malformed_public_url_stops_the_server_with_a_clear_error(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from portal.settings import _public_url

    monkeypatch.setenv("REEF_PUBLIC_URL", "reef.example.com")
    with pytest.raises(ImproperlyConfigured, match="REEF_PUBLIC_URL must be the server's address"):
        _public_url("REEF_PUBLIC_URL")
    monkeypatch.setenv("REEF_PUBLIC_URL", "https://reef.example.com/")
    assert _public_url("REEF_PUBLIC_URL") == "https://reef.example.com"
