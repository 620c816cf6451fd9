from django.apps import AppConfig
from django.db.models.signals import post_migrate

# The imports inside functions wait for Django's app loading: this module is read before any model is.


def _ensure_orphan_check(**kwargs) -> None:
    """Celery beat looks every minute for tasks a dead server node left Executing, and hourly for old logs."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="Fail tasks whose server node stopped",
        defaults={"task": "deployments.fail_orphaned_tasks", "interval": every, "enabled": True},
    )
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.update_or_create(
        name="Delete task logs past their retention",
        defaults={"task": "deployments.apply_log_retention", "interval": hourly, "enabled": True},
    )


class DeploymentsConfig(AppConfig):
    name = "deployments"
    verbose_name = "Deployments"

    def ready(self):
        from deployments.services.catalog import POOL_REFERRER_FINDERS
        from infrastructure.services.pools import pool_referrer_finders

        # Steps (process and runbook), Worker Pool variables and undeployed releases keep a pool from being deleted.
        pool_referrer_finders.extend(f for f in POOL_REFERRER_FINDERS if f not in pool_referrer_finders)
        post_migrate.connect(_ensure_orphan_check, sender=self, dispatch_uid="deployments-orphan-check")
