"""One Celery worker per node for everything: `manage.py serve` starts a single threads-pool worker
that runs server tasks (its -Q queue, at most --concurrency at once: the node's task cap), health
checks and housekeeping (--health-queue, on threads of their own) and Celery beat (--beat-thread), so a
node idles in one Celery process instead of five (bench/footprint.py).

- --health-queue consumes its queue on a channel of its own, with a prefetch of --health-concurrency:
  each queue reserves only what its own threads can run at once, so a health check never waits behind
  deployments, and deployments never exceed the task cap.
- --beat-thread runs beat in a thread (Celery's -B forks a process nobody would restart); the scheduler
  lease (deployments/beat.py) still lets one node of the cluster send jobs. A beat that fails starts again.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import click
from celery import bootsteps
from celery.beat import Service
from kombu import Consumer

logger = logging.getLogger(__name__)

BEAT_BACKOFF_FIRST, BEAT_BACKOFF_MAX = 1.0, 30.0


class HealthQueue(bootsteps.ConsumerStep):
    """Consumes --health-queue beside the worker's own queues, with its own prefetch and threads."""

    requires = ("celery.worker.consumer:Tasks",)

    def __init__(self, parent, health_queue=None, health_concurrency=None, **kwargs):
        self.queue_name, self.concurrency = health_queue, int(health_concurrency or 2)
        self.enabled = bool(health_queue)
        super().__init__(parent, **kwargs)
        if not self.enabled:
            return
        pool = parent.pool
        if not isinstance(getattr(pool, "executor", None), ThreadPoolExecutor):
            raise click.UsageError("--health-queue needs --pool threads")
        # The pool's limit (and so the worker's prefetch) stays the task cap; its threads grow by this
        # queue's share, which only this queue's prefetch can fill.
        pool.executor.shutdown(wait=False)
        pool.executor = ThreadPoolExecutor(max_workers=pool.limit + self.concurrency)
        parent.reef_health_queue = self.queue_name

    def get_consumers(self, channel):
        channel.basic_qos(0, self.concurrency, False)
        return [
            Consumer(
                channel,
                queues=[self.queue],
                on_message=self.handler,
                accept=self.accept,
                prefetch_count=self.concurrency,
            )
        ]

    def _close(self, c, cancel_consumers=True):
        if c.connection is not None:
            return super()._close(c, cancel_consumers)
        # The broker connection is already gone (a Redis restart): Celery's own close would fail on it and log
        # an error; the consumers and channels go with the connection, and start() makes new ones.
        self.consumers = None

    def start(self, c):
        self.queue, self.accept = c.app.amqp.queues[self.queue_name], c.app.conf.accept_content
        # The worker's own task handler: same strategies, acks late, expiry and revocation as its main queue.
        self.handler = c.create_task_handler()
        super().start(c)


class BeatThread(bootsteps.StartStopStep):
    """Celery beat in a thread of this worker."""

    label = "Beat thread"
    conditional = True

    def __init__(self, w, beat_thread=False, **kwargs):
        self.enabled = bool(beat_thread)
        self.service, self.thread, self.stopping = None, None, threading.Event()
        super().__init__(w, **kwargs)

    def start(self, w):
        self.thread = threading.Thread(target=self.run, args=(w.app,), name="Beat", daemon=True)
        self.thread.start()

    def run(self, app) -> None:
        backoff = BEAT_BACKOFF_FIRST
        while not self.stopping.is_set():
            self.service = Service(app, scheduler_cls=app.conf.beat_scheduler, remote_control=False)
            try:
                self.service.start()
                return  # asked to stop
            except Exception:  # noqa: BLE001 - a scheduler that fails is started again, as its process was
                logger.exception("Beat failed; starting it again in %.0fs.", backoff)
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, BEAT_BACKOFF_MAX)

    def stop(self, w):
        self.stopping.set()
        if self.service is not None:
            self.service.stop()
        if self.thread is not None:
            self.thread.join(10)  # it sleeps at most one scheduler tick, then closes (releasing the lease)

    def shutdown(self, w):
        self.stop(w)


def install(app) -> None:
    app.user_options["worker"].add(
        click.Option(["--health-queue"], default=None, help="Also consume this queue, with threads of its own.")
    )
    app.user_options["worker"].add(
        click.Option(["--health-concurrency"], type=int, default=2, help="Tasks of --health-queue run at once.")
    )
    app.user_options["worker"].add(
        click.Option(["--beat-thread"], is_flag=True, default=False, help="Run Celery beat in a thread of this worker.")
    )
    app.steps["consumer"].add(HealthQueue)
    app.steps["worker"].add(BeatThread)
