"""The Celery app. Tasks carry ids, once per server task (DESIGN.md)."""

import os

from celery import Celery

from portal.worker import install as install_worker_options

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# A worker skips Django's system checks: they import every URL, view and API module (tens of MB a worker
# never uses); `manage.py serve`, `migrate` and `check` run them.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("reef")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
install_worker_options(app)
