"""Celery entry points of the portal."""

from celery import shared_task


@shared_task(name="portal.ping")
def ping() -> str:
    """A no-op: the bare Celery round trip that bench/dispatch.py measures against."""
    return "pong"
