"""Celery entry points: thin adapters that load by id and call a service."""

from celery import shared_task

from infrastructure.models import Worker
from infrastructure.services import health, liveness


@shared_task(name="infrastructure.check_worker_health", acks_late=True, max_retries=0)
def check_worker_health_task(worker_id: int) -> str:
    try:
        return health.check_worker_health(worker_id).health_status
    except Worker.DoesNotExist:
        return "deleted"


# A sweep queued behind a long one is skipped: the next beat brings another.
@shared_task(name="infrastructure.run_due_health_checks", acks_late=True, max_retries=0, expires=5)
def run_due_health_checks_task() -> int:
    return health.run_due_health_checks()


@shared_task(name="infrastructure.run_health_check", acks_late=True, max_retries=0)
def run_health_check_task(task_id: int) -> None:
    health.run_health_check_server_task(task_id)


@shared_task(name="infrastructure.sweep_worker_presence", acks_late=True, max_retries=0, expires=10)
def sweep_worker_presence_task() -> dict:
    return liveness.sweep_presence()


@shared_task(name="infrastructure.probe_worker_endpoints", acks_late=True, max_retries=0, expires=5)
def probe_worker_endpoints_task() -> dict:
    return liveness.probe_worker_endpoints()
