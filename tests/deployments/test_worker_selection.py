"""Octopus's worker selection rules, against real agents and the built-in worker."""

import pytest

from deployments.models import ServerConfiguration, Variable, WorkerLease
from deployments.services import deploy, lifecycles
from tests.deployments.conftest import add_step, deploy_and_run, log_text

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_server_step_with_an_empty_default_pool_runs_on_the_built_in_worker(administrator, project, production):
    add_step(project, "Say hello", 'echo "hello from #{Octopus.Environment.Name}"')
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Success", log_text(task)
    log = log_text(task)
    assert "hello from Production" in log
    assert "the built-in worker was chosen because the default pool Default Worker Pool has no workers" in log


def test_with_the_built_in_worker_disabled_the_step_fails_before_it_starts_saying_what_to_do(administrator, project, production):
    ServerConfiguration.objects.update_or_create(pk=1, defaults={"is_builtin_worker_enabled": False})
    add_step(project, "Say hello", "echo never")
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "built-in worker is disabled" in task.error_message
    assert "enable the built-in worker in Configuration ➜ Features" in task.error_message
    assert "never" not in log_text(task)
    assert task.activity_nodes.get(name="Step 1: Say hello").status == "Skipped"


def test_adding_one_worker_to_the_default_pool_moves_server_steps_off_the_server(agents, administrator, project, production,
                                                                                 default_pool):
    add_step(project, "Where am I", "echo pid=$$ on $(hostname) worker=#{Octopus.Worker.Name}")
    before = deploy_and_run(administrator, project, production)
    assert "the built-in worker was chosen" in log_text(before)
    agents.start("first-worker", [default_pool])
    after = deploy_and_run(administrator, project, production)  # the same process, unchanged
    assert after.state == "Success", log_text(after)
    assert "first-worker was chosen because round-robin among 1 healthy workers of Default Worker Pool" in log_text(after)
    assert "worker=first-worker" in log_text(after)


def test_an_empty_pool_that_is_not_the_default_fails_naming_the_pool(administrator, project, production, make_pool):
    add_step(project, "Build", "echo hi", worker_pool=make_pool("Builders"))
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "the pool Builders, but that pool has no workers" in task.error_message


def test_a_pool_with_only_unhealthy_or_disabled_workers_fails_naming_them(agents, administrator, project, production, make_pool):
    pool = make_pool("Builders")
    worker = agents.start("w1", [pool])
    worker.agent.stop()
    worker.health_status = "Unavailable"
    worker.save()
    add_step(project, "Build", "echo hi", worker_pool=pool)
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "needs a healthy, enabled worker from the pool Builders, and it has none" in task.error_message and "w1 is Unavailable" in task.error_message


def test_round_robin_spreads_tasks_across_three_agents(agents, administrator, project, production, make_pool):
    pool = make_pool("Builders")
    names = {agents.start(f"rr-{i}", [pool]).name for i in range(3)}
    add_step(project, "Build", "echo ran on #{Octopus.Worker.Name}", worker_pool=pool)
    release = deploy.create_release(actor=administrator, project=project)
    chosen = []
    for _ in range(6):
        from deployments.services.orchestrator import run_server_task

        task = deploy.deploy_release(actor=administrator, release=release, environment=production).task
        run_server_task(task.pk)
        line = next(t for t in log_text(task).splitlines() if t.startswith("ran on "))
        chosen.append(line.removeprefix("ran on "))
    assert set(chosen) == names
    assert chosen[:3] != chosen[3:4] * 3 and sorted(chosen[:3]) == sorted(names) and chosen[3:] == chosen[:3]
    assert not WorkerLease.objects.exists()  # leases end with their tasks


def _in_any_order(administrator, project, *environments) -> None:
    """One phase holding the environments: these tests deploy to them in any order (promotion has its own tests)."""
    project.lifecycle = lifecycles.save_lifecycle(actor=administrator, space=project.space, name="Any order", phases=[
        lifecycles.PhaseSpec(name="All", optional_environments=list(environments))])
    project.save()


def test_a_worker_pool_variable_picks_the_pool_per_environment(agents, administrator, project, production, staging, make_pool):
    _in_any_order(administrator, project, production, staging)
    prod_pool, staging_pool = make_pool("Prod workers"), make_pool("Staging workers")
    agents.start("prod-box", [prod_pool])
    agents.start("staging-box", [staging_pool])
    for environment, pool in ((production, prod_pool), (staging, staging_pool)):
        variable = Variable.objects.create(project=project, name="DeployPool", type="WorkerPool", worker_pool=pool)
        variable.environments.set([environment])
    add_step(project, "Deploy", "echo on #{Octopus.WorkerPool.Name}", worker_pool_variable="DeployPool")
    prod_task = deploy_and_run(administrator, project, production)
    staging_task = deploy_and_run(administrator, project, staging)
    assert "on Prod workers" in log_text(prod_task) and "prod-box was chosen" in log_text(prod_task)
    assert "on Staging workers" in log_text(staging_task) and "staging-box was chosen" in log_text(staging_task)
    assert "the variable DeployPool chose the pool Staging workers for the environment Staging" in log_text(staging_task)


def test_a_pool_variable_without_a_value_for_the_environment_fails_clearly(administrator, project, production, staging, make_pool):
    _in_any_order(administrator, project, production, staging)
    variable = Variable.objects.create(project=project, name="DeployPool", type="WorkerPool", worker_pool=make_pool("P"))
    variable.environments.set([staging])
    add_step(project, "Deploy", "echo hi", worker_pool_variable="DeployPool")
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "variable DeployPool, which has no value for the environment Production" in task.error_message
