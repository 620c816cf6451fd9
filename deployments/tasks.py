"""Celery entry points: thin adapters that load by id and call a service."""

from celery import shared_task
from celery.signals import worker_ready


@shared_task(name="deployments.run_server_task", acks_late=True, max_retries=0)
def run_server_task_task(task_id: int) -> None:
    from deployments.services.lifecycles import promote_after_task
    from deployments.services.orchestrator import run_server_task

    run_server_task(task_id)
    promote_after_task(task_id)  # a successful deployment may open a phase with automatic environments


@shared_task(name="deployments.fail_orphaned_tasks", acks_late=True, max_retries=0)
def fail_orphaned_tasks_task() -> list[int]:
    from deployments.services.tasks import fail_orphaned_tasks

    return fail_orphaned_tasks()


@worker_ready.connect
def _fail_orphans_on_start(**kwargs) -> None:
    """A node that restarts looks at once for tasks a dead node left Executing."""
    fail_orphaned_tasks_task.delay()


@shared_task(name="deployments.apply_log_retention", acks_late=True, max_retries=0)
def apply_log_retention_task() -> int:
    from deployments.services.tasks import apply_log_retention

    return apply_log_retention()
