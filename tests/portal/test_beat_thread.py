"""Beat in a thread of the task runner (portal/worker.py): a scheduler that fails is started again, as the
supervisor restarted beat when it was a process of its own, and it stops when the worker stops."""

import threading
from types import SimpleNamespace

from celery import Celery
from celery.beat import Scheduler

from portal.worker import BeatThread


class FailsOnceScheduler(Scheduler):
    starts = 0
    ticking = threading.Event()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        type(self).starts += 1

    def tick(self, *args, **kwargs):
        if type(self).starts == 1:
            raise RuntimeError("the database went away")
        type(self).ticking.set()
        return 0.1


def test_a_beat_that_fails_is_started_again_and_stops_with_the_worker():
    app = Celery("beat-thread-test", set_as_current=False)
    app.conf.beat_scheduler = FailsOnceScheduler
    worker = SimpleNamespace(app=app)
    step = BeatThread(worker, beat_thread=True)
    assert step.enabled
    step.start(worker)
    try:
        assert FailsOnceScheduler.ticking.wait(20), "beat did not start again after its scheduler failed"
        assert FailsOnceScheduler.starts == 2
    finally:
        step.stop(worker)
    assert not step.thread.is_alive()
    assert not BeatThread(worker).enabled  # without --beat-thread the worker runs no scheduler
