"""Personas and helpers shared by every test: an administrator, a space manager, a deployment
creator, a project viewer and an outsider, each a member of a team holding that built-in role."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from portal.models import Space, Team, User, UserRole
from portal.services import api_keys, teams, users
from portal.services.spaces import ensure_default_space


def pytest_collection_modifyitems(config, items):
    """Under `pytest -n N --dist loadgroup` (`make test`), a file's tests stay on one worker, so its module fixtures
    start once; the fault suite shares one cluster of server nodes, so it is one group."""
    if not getattr(config.option, "numprocesses", None):
        return
    for item in items:
        path = Path(str(item.fspath)).relative_to(Path(__file__).parent)
        item.add_marker(pytest.mark.xdist_group("faults" if path.parts[0] == "faults" else str(path)))


PASSWORD = "a-Long-test-passw0rd"


@pytest.fixture
def space(db) -> Space:
    return ensure_default_space()


def make_person(username: str, role: str | None, space: Space | None, *, system: bool = False) -> User:
    person = users.create_user(actor=None, username=username, password=PASSWORD, display_name=username.title())
    if role:
        admin = (
            User.objects.filter(is_superuser=True).first()
            or users.ensure_first_administrator(username="root-admin", password=PASSWORD)[0]
        )
        team = teams.create_team(
            actor=admin, name=f"{role} team ({username})", space=None if system else space, members=[person]
        )
        teams.assign_role(actor=admin, team=team, role=UserRole.objects.get(name=role), space=None if system else space)
    return person


@pytest.fixture
def administrator(db, space) -> User:
    user, _ = users.ensure_first_administrator(username="administrator", password=PASSWORD)
    return user or User.objects.get(username="administrator")


@pytest.fixture
def space_manager(db, space, administrator) -> User:
    return make_person("spacemanager", "Space manager", space)


@pytest.fixture
def environment_manager(db, space, administrator) -> User:
    return make_person("envmanager", "Environment manager", space)


@pytest.fixture
def deployment_creator(db, space, administrator) -> User:
    return make_person("deployer", "Deployment creator", space)


@pytest.fixture
def project_viewer(db, space, administrator) -> User:
    return make_person("viewer", "Project viewer", space)


@pytest.fixture
def outsider(db, space, administrator) -> User:
    return make_person("outsider", None, space)


@pytest.fixture
def other_space(db, administrator) -> Space:
    from portal.services.spaces import create_space

    return create_space(actor=administrator, name="Elsewhere")


@pytest.fixture
def api_client():
    """An API client that signs requests with a fresh API key for a given user."""

    def for_user(user: User | None) -> APIClient:
        client = APIClient()
        if user is not None:
            _, key = api_keys.create_api_key(actor=user, user=user, purpose="tests")
            client.credentials(HTTP_X_OCTOPUS_APIKEY=key)
        return client

    return for_user


@pytest.fixture
def page_client(client):
    """A browser-like client logged in as a given user."""

    def as_user(user: User):
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return as_user


def listening_worker(actor: User, space: Space, name: str, pools, *, thumbprint: str = "A" * 40, **spec):
    """A listening worker registered through the service at https://<name>:10933/, where nothing listens."""
    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker

    endpoint = Endpoint("TentaclePassive", uri=f"https://{name}:10933/", thumbprint=thumbprint)
    return register_worker(
        actor=actor, space=space, spec=WorkerSpec(name=name, worker_pools=list(pools), endpoint=endpoint, **spec)
    )


def team_named(name: str) -> Team:
    return Team.objects.get(name=name)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder the built-in worker's own account (not root) can read: for markers a test script waits on."""
    folder = Path(tempfile.mkdtemp(prefix="reef-shared-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


# One browser for the whole run (Playwright's sync API allows one per thread), shared by every test folder.
@pytest.fixture(scope="session")
def browser():
    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()
