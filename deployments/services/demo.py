"""The first run shows a deployment: a `Hello workers` project with one step on the `Local workers`
pool and one on the server, and a `Development` environment to deploy it to. `REEF_DEMO=0` skips it."""

from __future__ import annotations

from deployments.models import Environment, Project, Step
from deployments.services.lifecycles import default_channel, default_lifecycle, default_project_group
from infrastructure.models import WorkerPool
from infrastructure.services.demo import POOL_NAME
from portal.models import Space

PROJECT_NAME = "Hello workers"

WORKER_SCRIPT = """echo "Hello from $(hostname), a worker in the pool #{Octopus.WorkerPool.Name}."
echo "Deploying #{Octopus.Project.Name} #{Octopus.Release.Number} to #{Octopus.Environment.Name}."
set_octopusvariable Greeting "hello from #{Octopus.Worker.Name}"
"""

SERVER_SCRIPT = """pool="#{Octopus.WorkerPool.Name}"
echo "This step runs on the server, which means the default pool $pool: #{Octopus.Worker.Name} ran it."
echo "The previous step said: #{Octopus.Action[Say hello from a worker].Output.Greeting}"
"""


def ensure_hello_workers_project() -> Project | None:
    """Only on a database with no projects yet, and only where the demo's pool exists."""
    if Project.objects.exists():
        return None
    space = Space.objects.default()
    pool = WorkerPool.objects.filter(space=space, name=POOL_NAME).first()
    if pool is None:
        return None
    Environment.objects.get_or_create(space=space, name="Development", defaults={"sort_order": 0})
    project = Project.objects.create(
        space=space,
        name=PROJECT_NAME,
        slug="hello-workers",
        project_group=default_project_group(space),
        lifecycle=default_lifecycle(space),
        description="A sample: one step on the Local workers pool, one on the server. Deploy it and watch both run.",
    )
    default_channel(project)
    Step.objects.create(
        project=project,
        name="Say hello from a worker",
        sort_order=0,
        location=Step.Location.WORKER,
        worker_pool=pool,
        script_body=WORKER_SCRIPT,
    )
    Step.objects.create(
        project=project,
        name="Say hello from the server",
        sort_order=1,
        location=Step.Location.SERVER,
        script_body=SERVER_SCRIPT,
    )
    return project
