"""Celery entry points: thin adapters that load by id and call a service."""

import logging

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from deployments.services.lifecycles import promote_after_task
from deployments.services.nodes import NodeHeartbeat, reap_tasks_of_this_node, record_node_row
from deployments.services.orchestrator import run_server_task
from deployments.services.tasks import fail_orphaned_tasks
from servertasks.services.tasks import apply_log_retention

logger = logging.getLogger(__name__)


# No result: nothing waits on one, and keeping it made each send subscribe to (and, once the AsyncResult was
# dropped, unsubscribe from) its result channel in Redis, and each finished task store and publish a result.
@shared_task(name="deployments.run_server_task", acks_late=True, max_retries=0, ignore_result=True)
def run_server_task_task(task_id: int) -> None:
    run_server_task(task_id)
    promote_after_task(task_id)  # a successful deployment may open a phase with automatic environments


@shared_task(name="deployments.fail_orphaned_tasks", acks_late=True, max_retries=0)
def fail_orphaned_tasks_task() -> list[int]:
    return fail_orphaned_tasks()


_node_heartbeat = None


def _queues(consumer) -> set[str]:
    """The queues a worker consumes: its own, and the health queue it may run beside them (portal/worker.py)."""
    names = {queue.name for queue in consumer.task_consumer.queues}
    health_queue = getattr(consumer, "reef_health_queue", None)
    return (names | {health_queue}) if health_queue else names


@worker_ready.connect
def _start_node(sender=None, **kwargs) -> None:
    """Before it takes a task, a starting worker fails at once the tasks its node's previous process left
    unfinished (by node name, no grace period); the task runner then beats for its node and watches the others."""
    global _node_heartbeat
    queues = _queues(sender) if sender is not None else set()
    task_runner = settings.REEF_TASK_QUEUE in queues
    failed = reap_tasks_of_this_node(server_tasks=task_runner, health_checks=not task_runner or len(queues) > 1)
    if failed:
        logger.warning("Failed %s task(s) this node left unfinished when it stopped: %s", len(failed), failed)
    if task_runner:
        record_node_row(started=True)
        _node_heartbeat = NodeHeartbeat().start()


@worker_shutdown.connect
def _stop_node(**kwargs) -> None:
    if _node_heartbeat is not None:
        _node_heartbeat.shutdown()


@shared_task(name="deployments.apply_log_retention", acks_late=True, max_retries=0)
def apply_log_retention_task() -> int:
    return apply_log_retention()
