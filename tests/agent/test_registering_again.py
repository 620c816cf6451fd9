"""Registering again, with real processes: the install script run twice on one machine keeps the worker
(same id, pools, policy, disabled flag, grants); a `register-worker --force` the server refuses leaves
every worker, pool membership and grant as it was, and the agent's configuration too."""

import os
import subprocess

import pytest
from guardian.shortcuts import assign_perm, get_groups_with_perms

from infrastructure.models import Worker, WorkerPool
from infrastructure.services.policies import create_machine_policy
from infrastructure.services.pools import create_worker_pool
from portal.services.api_keys import create_api_key
from portal.services.teams import create_team
from tests.agent.harness import Agent, free_port
from tests.agent.test_install_script_end_to_end import fetch_script, output_until
from tests.infrastructure.test_register_tentacle import everything

pytestmark = pytest.mark.e2e


@pytest.fixture
def api_key(administrator):
    return create_api_key(actor=administrator, user=administrator, purpose="registration tests")[1]


def looked_after(worker: Worker, administrator, space) -> dict:
    """What an operator did to the worker after it first registered, to be found intact afterwards."""
    builders = create_worker_pool(actor=administrator, space=space, name="Builders")
    policy = create_machine_policy(actor=administrator, space=space, name="Nightly")
    worker.worker_pools.add(builders)
    Worker.objects.filter(pk=worker.pk).update(machine_policy=policy, is_disabled=True)
    team = create_team(actor=administrator, name="Build team", space=space)
    assign_perm("infrastructure.change_worker", team.group, worker)
    return {
        "pools": {WorkerPool.objects.get(space=space, is_default=True), builders},
        "policy": policy,
        "group": team.group,
    }


def test_running_the_install_script_again_keeps_the_worker_and_its_settings(
    live_reef, administrator, space, api_key, tmp_path
):
    script, prefix, port = fetch_script(live_reef, tmp_path), tmp_path / "opt", free_port()
    argv = [
        "bash",
        script,
        "--server",
        live_reef,
        "--workerpool",
        "Default Worker Pool",
        "--name",
        "build-01",
        "--port",
        str(port),
        "--public-hostname",
        "127.0.0.1",
        "--prefix",
        str(prefix),
        "--no-service",
    ]
    env = {**os.environ, "REEF_API_KEY": api_key}

    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output_until(first, "Registered build-01 as Workers-")
    finally:
        first.terminate()
        first.wait(timeout=20)
    worker = Worker.objects.get(name="build-01")
    kept = looked_after(worker, administrator, space)

    second = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        said = output_until(second, "Registered build-01 again")
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert f"the same worker {worker.octopus_id}" in said and api_key not in said
    again = Worker.objects.get()
    assert again.pk == worker.pk and again.octopus_id == worker.octopus_id
    assert (
        set(again.worker_pools.all()) == kept["pools"] and again.machine_policy == kept["policy"] and again.is_disabled
    )
    assert list(get_groups_with_perms(again, attach_perms=True).items()) == [(kept["group"], ["change_worker"])]
    assert (again.uri, again.thumbprint) == (worker.uri, worker.thumbprint)


def test_a_refused_force_changes_nothing(live_reef, administrator, deployment_creator, space, api_key, tmp_path):
    machine = Agent(tmp_path / "machine").create(listening_port=free_port())
    assert machine.register(live_reef, api_key, polling=False, name="web-01").returncode == 0
    worker = Worker.objects.get(name="web-01")
    looked_after(worker, administrator, space)
    rebuilt = Agent(tmp_path / "rebuilt").create(listening_port=free_port())  # same name, a new certificate
    no_rights = create_api_key(actor=deployment_creator, user=deployment_creator, purpose="registration tests")[1]
    configs = {agent: (agent.home / "tentacle.json").read_text() for agent in (machine, rebuilt)}
    before = everything()

    too_long = machine.register(live_reef, api_key, polling=False, name="x" * 300, extra=("--force",))
    assert too_long.returncode != 0 and "Name: A worker name has at most 200 characters" in too_long.stderr
    taken = rebuilt.register(live_reef, api_key, polling=False, name="web-01")
    assert taken.returncode != 0 and "A worker named 'web-01'" in taken.stderr and "--force" in taken.stderr
    forbidden = rebuilt.register(live_reef, no_rights, polling=False, name="web-01", extra=("--force",))
    assert forbidden.returncode != 0 and "refused the API key (403)" in forbidden.stderr
    unknown_pool = rebuilt.register(
        live_reef, api_key, polling=False, name="web-01", pools=("Nope",), extra=("--force",)
    )
    assert unknown_pool.returncode != 0 and "No worker pool named 'Nope'" in unknown_pool.stderr

    assert everything() == before
    assert {agent: (agent.home / "tentacle.json").read_text() for agent in (machine, rebuilt)} == configs

    # Once valid, --force takes the worker over in place: same id, the new certificate, settings kept.
    replaced = rebuilt.register(live_reef, api_key, polling=False, name="web-01", extra=("--force",))
    assert replaced.returncode == 0, replaced.stderr
    now = Worker.objects.get()
    assert (now.pk, now.thumbprint, now.is_disabled) == (worker.pk, rebuilt.thumbprint, True)
    assert now.worker_pools.count() == 2 and get_groups_with_perms(now).count() == 1
