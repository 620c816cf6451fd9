"""The Add Worker wizard for tentacles: platform, style, a ready install command, registering by hand."""

import re

import pytest

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.pools import create_worker_pool
from infrastructure.views.wizard import install_command
from tests.conftest import listening_worker


@pytest.fixture
def wizard(page_client, environment_manager, space):
    client = page_client(environment_manager)
    client.base = f"/{space.octopus_id}/infrastructure/workers/new/"
    return client


def test_the_wizard_offers_platforms_then_styles(wizard):
    assert all(label in wizard.get(wizard.base).content.decode() for label in ("Linux", "macOS", "Windows"))
    linux = wizard.get(wizard.base + "?platform=linux").content.decode()
    assert all(f"new/linux/{style}/" in linux for style in ("listening", "polling", "ssh"))
    windows = wizard.get(wizard.base + "?platform=windows").content.decode()
    assert "new/windows/listening/" in windows and "new/windows/ssh/" not in windows and "Linux and macOS" in windows
    assert wizard.get(wizard.base + "windows/ssh/").status_code == 404
    assert wizard.get(wizard.base + "linux/carrier-pigeon/").status_code == 404


def test_a_listening_tentacle_gets_the_server_thumbprint_and_a_ready_install_command(wizard, space):
    html = wizard.get(wizard.base + "linux/listening/").content.decode()
    thumbprint = current_server_certificate().thumbprint
    expected = (
        f"curl -fsSL http://testserver/infrastructure/tentacle/install.sh | sudo bash -s -- --server http://testserver "
        f"--apikey API-YOURKEY --workerpool &quot;Default Worker Pool&quot; --space &quot;{space.name}&quot; "
        f"--server-thumbprint {thumbprint}<"
    )
    assert f'id="server-thumbprint" class="user-select-all">{thumbprint}<' in html
    assert expected in html and "--polling" not in html
    assert 'id="copy-install-command"' in html


def test_a_polling_tentacle_command_says_polling_and_the_pool_can_be_chosen(wizard, administrator, space):
    builders = create_worker_pool(actor=administrator, space=space, name="Linux builders")
    html = wizard.get(wizard.base + f"mac/polling/?pool={builders.pk}").content.decode()
    assert (
        "--workerpool &quot;Linux builders&quot;" in html
        and "--polling --polling-address https://testserver:10943/<" in html
    )
    assert re.search(rf'<option value="{builders.pk}" selected>Linux builders</option>', html)


def test_windows_shows_the_same_command_with_a_note_that_agents_are_linux_and_macos_only(wizard):
    html = wizard.get(wizard.base + "windows/listening/").content.decode()
    assert 'id="windows-note"' in html and "Only Linux and macOS agents exist for now" in html and "install.sh" in html


def test_names_the_shell_would_expand_are_quoted_safely():
    command = install_command(
        base="https://reef", pool_name='Ops "$(rm -rf /)"', space_name="Default", thumbprint="AB", polling=False
    )
    assert '--workerpool \'Ops "$(rm -rf /)"\' --space "Default"' in command


def test_a_listening_worker_registered_by_hand_is_saved_and_shown(wizard, space):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    response = wizard.post(
        wizard.base + "linux/listening/",
        {
            "name": "web-01",
            "worker_pool_ids": [pool.pk],
            "machine_policy_id": space.machine_policies.get().pk,
            "uri": "https://web-01.internal:10933/",
            "thumbprint": "ab:" * 19 + "ab",
        },
    )
    worker = Worker.objects.get(name="web-01")
    assert (
        response.status_code == 302
        and response["Location"] == f"/{space.octopus_id}/infrastructure/workers/{worker.pk}/"
    )
    assert (worker.communication_style, worker.uri, worker.thumbprint) == (
        "TentaclePassive",
        "https://web-01.internal:10933/",
        "AB" * 20,
    )
    assert list(worker.worker_pools.all()) == [pool] and worker.health_status == "Unknown"


def test_a_polling_worker_registered_by_hand_keeps_its_subscription(wizard, space):
    pool = WorkerPool.objects.get(space=space, is_default=True)
    wizard.post(
        wizard.base + "linux/polling/",
        {
            "name": "behind-nat",
            "worker_pool_ids": [pool.pk],
            "machine_policy_id": space.machine_policies.get().pk,
            "uri": "poll://abcdefghij0123456789/",
            "thumbprint": "C" * 40,
        },
    )
    assert Worker.objects.get(name="behind-nat").subscription_id == "abcdefghij0123456789"


@pytest.mark.parametrize(
    "style,changes,field,message",
    [
        ("listening", {"uri": "http://web:10933/"}, "uri", "https://HOST:10933/"),
        ("listening", {"thumbprint": "nope"}, "thumbprint", "40 hexadecimal characters"),
        ("polling", {"uri": "https://web:10933/"}, "uri", "poll://SUBSCRIPTIONID/"),
        ("listening", {"name": "taken"}, "name", "already exists"),
        ("listening", {"worker_pool_ids": []}, "worker_pool_ids", "required"),
    ],
)
def test_bad_input_is_a_400_with_the_error_on_its_field_and_saves_nothing(
    wizard, administrator, space, style, changes, field, message
):

    pool = WorkerPool.objects.get(space=space, is_default=True)
    listening_worker(administrator, space, "taken", [pool], thumbprint="0" * 40)
    uri = "https://web:10933/" if style == "listening" else "poll://websubscription/"
    data = {
        "name": "web",
        "worker_pool_ids": [pool.pk],
        "machine_policy_id": space.machine_policies.get().pk,
        "uri": uri,
        "thumbprint": "A" * 40,
        **changes,
    }
    response = wizard.post(wizard.base + f"linux/{style}/", data)
    html = response.content.decode()
    assert response.status_code == 400
    assert re.search(rf'data-field="{field}">[^<]*{re.escape(message)}', html), html
    assert list(Worker.objects.values_list("name", flat=True)) == ["taken"]


def test_a_dynamic_pool_cannot_be_chosen_for_a_registered_worker(wizard, administrator, space):
    leased = create_worker_pool(
        actor=administrator, space=space, name="Leased", pool_type="DynamicWorkerPool", worker_type="ubuntu"
    )
    html = wizard.get(wizard.base + "linux/listening/").content.decode()
    assert "Leased" not in html
    response = wizard.post(
        wizard.base + "linux/listening/",
        {
            "name": "web",
            "worker_pool_ids": [leased.pk],
            "machine_policy_id": space.machine_policies.get().pk,
            "uri": "https://web:10933/",
            "thumbprint": "A" * 40,
        },
    )
    assert response.status_code == 400 and not Worker.objects.exists()
