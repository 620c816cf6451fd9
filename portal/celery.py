"""The Celery app. Tasks carry ids, once per server task (DESIGN.md)."""

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger

from portal.worker import install as install_worker_options

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# A worker skips Django's system checks: they import every URL, view and API module (tens of MB a worker
# never uses); `manage.py serve`, `migrate` and `check` run them.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("reef")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
install_worker_options(app)

# Liveness housekeeping runs every few seconds: its "sent / received / succeeded" lines would bury the log.
HOUSEKEEPING = (
    "infrastructure.sweep_worker_presence",
    "infrastructure.probe_worker_endpoints",
    "infrastructure.run_due_health_checks",
)


class QuietHousekeeping(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not any(name in record.getMessage() for name in HOUSEKEEPING)


@after_setup_logger.connect
def _quiet_housekeeping(logger, **kwargs) -> None:
    for handler in logger.handlers:
        handler.addFilter(QuietHousekeeping())
