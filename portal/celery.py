"""The Celery app. Tasks carry ids, once per server task (DESIGN.md)."""

import os

from celery import Celery

from portal.worker import install as install_worker_options

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("reef")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
install_worker_options(app)
