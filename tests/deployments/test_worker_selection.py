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


def test_with_the_built_in_worker_disabled_the_step_fails_before_it_starts_saying_what_to_do(
    administrator, project, production
):
    ServerConfiguration.objects.update_or_create(pk=1, defaults={"is_builtin_worker_enabled": False})
    add_step(project, "Say hello", "echo never")
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "built-in worker is disabled" in task.error_message
    assert "enable the built-in worker in Configuration ➜ Features" in task.error_message
    assert "never" not in log_text(task)
    assert task.activity_nodes.get(name="Step 1: Say hello").status == "Skipped"


def test_adding_one_worker_to_the_default_pool_moves_server_steps_off_the_server(
    agents, administrator, project, production, default_pool
):
    add_step(project, "Where am I", "echo pid=$$ on $(hostname) worker=#{Octopus.Worker.Name}")
    before = deploy_and_run(administrator, project, production)
    assert "the built-in worker was chosen" in log_text(before)
    agents.start("first-worker", [default_pool])
    after = deploy_and_run(administrator, project, production)  # the same process, unchanged
    assert after.state == "Success", log_text(after)
    assert "first-worker was chosen because round-robin among 1 healthy workers of Default Worker Pool" in log_text(
        after
    )
    assert "worker=first-worker" in log_text(after)


def test_an_empty_pool_that_is_not_the_default_fails_naming_the_pool(administrator, project, production, make_pool):
    add_step(project, "Build", "echo hi", worker_pool=make_pool("Builders"))
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "the pool Builders, but that pool has no workers" in task.error_message


def test_a_pool_with_only_unhealthy_or_disabled_workers_fails_naming_them(
    agents, administrator, project, production, make_pool
):
    pool = make_pool("Builders")
    worker = agents.start("w1", [pool])
    worker.agent.stop()
    worker.health_status = "Unavailable"
    worker.save()
    add_step(project, "Build", "echo hi", worker_pool=pool)
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert (
        "needs a healthy, enabled worker from the pool Builders, and it has none" in task.error_message
        and "w1 is Unavailable" in task.error_message
    )


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
    project.lifecycle = lifecycles.save_lifecycle(
        actor=administrator,
        space=project.space,
        name="Any order",
        phases=[lifecycles.PhaseSpec(name="All", optional_environments=list(environments))],
    )
    project.save()


def test_a_worker_pool_variable_picks_the_pool_per_environment(
    agents, administrator, project, production, staging, make_pool
):
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
    assert "the variable DeployPool chose the pool Staging workers for the environment Staging" in log_text(
        staging_task
    )


def test_a_pool_variable_without_a_value_for_the_environment_fails_clearly(
    administrator, project, production, staging, make_pool
):
    _in_any_order(administrator, project, production, staging)
    variable = Variable.objects.create(
        project=project, name="DeployPool", type="WorkerPool", worker_pool=make_pool("P")
    )
    variable.environments.set([staging])
    add_step(project, "Deploy", "echo hi", worker_pool_variable="DeployPool")
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "variable DeployPool, which has no value for the environment Production" in task.error_message


# Routing around dead workers ------------------------------------------------------------------------

from infrastructure.models import Worker  # noqa: E402
from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker  # noqa: E402
from portal.services.api_keys import create_api_key  # noqa: E402
from tests.agent.conftest import live_reef, polling_endpoint  # noqa: E402,F401 - fixtures
from tests.agent.harness import Agent, wait_until  # noqa: E402


@pytest.fixture
def pollers(live_reef, polling_endpoint, administrator, tmp_path, make_pool):  # noqa: F811
    """Polling agents in the pool Builders, each Healthy (the endpoint checks an agent as it arrives)."""
    pool = make_pool("Builders")
    key = create_api_key(actor=administrator, user=administrator, purpose="selection tests")[1]
    started = {}

    def start(name: str) -> Agent:
        agent = Agent(tmp_path / name).create()
        result = agent.register(
            live_reef, key, polling=True, polling_address=polling_endpoint, name=name, pools=("Builders",)
        )
        assert result.returncode == 0, result.stderr
        started[name] = agent.start()
        wait_until(lambda: Worker.objects.get(name=name).health_status == "Healthy", timeout=20)
        return agent

    yield pool, start
    for agent in started.values():
        agent.stop()


def ghost(space, administrator, pool, name="ghost") -> Worker:
    """A polling worker that was Healthy, whose agent is gone: nothing will ever collect its requests."""
    worker = register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name=name,
            worker_pools=[pool],
            endpoint=Endpoint(
                communication_style="TentacleActive", uri=f"poll://{name}000000000000/", thumbprint="B" * 40
            ),
        ),
    )
    Worker.objects.filter(pk=worker.pk).update(health_status="Healthy")
    return worker


def ran_on(task) -> str:
    return next(t for t in log_text(task).splitlines() if t.startswith("ran on ")).removeprefix("ran on ")


def test_a_pool_of_two_with_one_killed_runs_every_task_on_the_other(pollers, administrator, project, production):
    pool, start = pollers
    start("alive")
    doomed = start("doomed")
    add_step(project, "Build", "echo ran on #{Octopus.Worker.Name}", worker_pool=pool)
    doomed.kill()
    tasks = [deploy_and_run(administrator, project, production) for _ in range(4)]
    assert [t.state for t in tasks] == ["Success"] * 4, [t.error_message for t in tasks]
    assert [ran_on(t) for t in tasks] == ["alive"] * 4
    assert Worker.objects.get(name="doomed").health_status == "Unavailable"
    assert not WorkerLease.objects.exists()


def test_a_step_whose_worker_never_collects_moves_to_another_worker_saying_why(
    pollers, administrator, project, production, space
):
    pool, start = pollers
    start("alive")
    ghost(space, administrator, pool)
    add_step(project, "Build", "echo ran on #{Octopus.Worker.Name}", worker_pool=pool)
    # Another task keeps "alive" busy, so the fewest-leases rule picks the ghost when this task starts.
    WorkerLease.objects.create(
        task=queued_task(administrator, project, production),
        worker=Worker.objects.get(name="alive"),
        step_name="x",
        rule="test",
    )
    task = deploy_and_run(administrator, project, production)
    log = log_text(task)
    assert task.state == "Success", log
    assert "ghost was chosen because" in log and ran_on(task) == "alive"
    assert "ghost could not be reached before the script started" in log and "the step moves to alive" in log
    assert Worker.objects.get(name="ghost").health_status == "Unavailable"


def test_when_no_worker_of_the_pool_is_left_the_step_fails_naming_the_pool_and_each_reason(
    polling_endpoint, administrator, project, production, space, make_pool
):  # noqa: F811
    pool = make_pool("Builders")
    ghost(space, administrator, pool, "ghosta")
    add_step(project, "Build", "echo ran on #{Octopus.Worker.Name}", worker_pool=pool)
    task = deploy_and_run(administrator, project, production)
    assert task.state == "Failed"
    assert "Builders" in task.error_message and "ghosta" in task.error_message
    assert "not polling" in task.error_message or "not connected" in task.error_message, task.error_message
    assert "ran on" not in log_text(task)


def queued_task(administrator, project, production):
    if not project.steps.exists():
        add_step(project, "Build", "echo hi")
    return deploy.deploy_release(
        actor=administrator, release=deploy.create_release(actor=administrator, project=project), environment=production
    ).task


def healthy_workers(space, administrator, pool, count: int) -> list[Worker]:
    made = []
    for i in range(count):
        worker = register_worker(
            actor=administrator,
            space=space,
            spec=WorkerSpec(
                name=f"w{i}",
                worker_pools=[pool],
                endpoint=Endpoint(
                    communication_style="TentaclePassive", uri=f"https://127.0.0.1:{1000 + i}/", thumbprint=f"{i:040X}"
                ),
            ),
        )
        Worker.objects.filter(pk=worker.pk).update(health_status="Healthy")
        made.append(worker)
    return made


def test_a_tasks_own_leases_for_later_steps_do_not_break_package_affinity(
    administrator, project, production, space, make_pool
):
    from deployments.services.selection import WorkerSelector

    pool = make_pool("Builders")
    first, second = healthy_workers(space, administrator, pool, 2)
    task = queued_task(administrator, project, production)
    WorkerLease.objects.create(
        task=queued_task(administrator, project, production), worker=second, step_name="elsewhere", rule="test"
    )
    selector = WorkerSelector(task)
    packages = (("website", "1.0.0"),)
    chosen = [selector.choose(pool, f"Step {n}", packages) for n in range(5)]
    assert [c.worker.name for c in chosen] == [first.name] * 5
    assert all("same packages" in c.rule for c in chosen[1:])


def test_parallel_steps_that_share_packages_spread_over_an_idle_pool(
    administrator, project, production, space, make_pool
):
    from deployments.services.selection import WorkerSelector

    pool = make_pool("Builders")
    healthy_workers(space, administrator, pool, 3)
    task = queued_task(administrator, project, production)
    selector = WorkerSelector(task)
    packages = (("website", "1.0.0"),)
    chosen = [selector.choose(pool, "Deploy A", packages)]
    chosen += [selector.choose(pool, f"Deploy {n}", packages, with_previous=True) for n in "BC"]
    assert len({c.worker.pk for c in chosen}) == 3, [c.worker.name for c in chosen]
    later = selector.choose(pool, "Verify", packages)  # a later, sequential step goes back to the warm cache
    assert later.worker.pk in {c.worker.pk for c in chosen} and "same packages" in later.rule


def test_a_script_whose_worker_dies_after_it_started_fails_naming_the_worker_and_is_not_run_again(
    pollers, administrator, project, production
):
    from servertasks.models import ServerTask
    from tests.deployments.conftest import run_in_thread

    pool, start = pollers
    start("alive")
    doomed = start("doomed")
    add_step(project, "Build", "echo started on #{Octopus.Worker.Name}; sleep 60", worker_pool=pool)
    WorkerLease.objects.create(
        task=queued_task(administrator, project, production),
        worker=Worker.objects.get(name="alive"),
        step_name="x",
        rule="test",
    )  # so the fewest-leases rule picks "doomed"
    task = deploy.deploy_release(
        actor=administrator, release=deploy.create_release(actor=administrator, project=project), environment=production
    ).task
    runner = run_in_thread(task.pk)
    wait_until(lambda: "started on doomed" in log_text(task), timeout=30)
    doomed.kill()
    runner.join(60)
    task = ServerTask.objects.get(pk=task.pk)
    log = log_text(task)
    assert task.state == "Failed", log
    assert "doomed failed" in log and "doomed" in task.error_message + log
    assert "started on alive" not in log, "a script that started is never silently run again elsewhere"
    assert not WorkerLease.objects.filter(task=task).exists()
