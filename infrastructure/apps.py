from django.apps import AppConfig
from django.db.models.signals import post_migrate

# The imports inside functions wait for Django's app loading: this module is read before any model is.


def _ensure_space_defaults(space) -> None:
    from infrastructure.services.policies import ensure_default_machine_policy
    from infrastructure.services.pools import ensure_default_worker_pool

    ensure_default_worker_pool(space)
    ensure_default_machine_policy(space)


def _ensure_all_space_defaults(**kwargs) -> None:
    from portal.models import Space

    for space in Space.objects.all():
        _ensure_space_defaults(space)
    _ensure_health_check_sweep()


def _ensure_health_check_sweep() -> None:
    """Celery beat (django-celery-beat) runs the sweep; each worker's own interval decides when it is due."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    # Every 5 s: quick re-checks of workers found unreachable are due 5 s after the failure.
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="Health checks due by machine policy",
        defaults={"task": "infrastructure.run_due_health_checks", "interval": every, "enabled": True},
    )
    # A backstop for the polling endpoint's own presence sweep (it cannot run while the endpoint is down).
    backstop, _ = IntervalSchedule.objects.get_or_create(every=10, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name="Polling workers' presence",
        defaults={"task": "infrastructure.sweep_worker_presence", "interval": backstop, "enabled": True},
    )
    # Listening and SSH workers: a TCP connect to each, so a dead one is noticed with no call in flight.
    PeriodicTask.objects.update_or_create(
        name="Listening and SSH workers' liveness",
        defaults={"task": "infrastructure.probe_worker_endpoints", "interval": every, "enabled": True},
    )


class InfrastructureConfig(AppConfig):
    name = "infrastructure"
    verbose_name = "Infrastructure"

    def ready(self):
        from infrastructure.dashboard import worker_cards
        from portal.services import dashboard_cards, spaces

        spaces.space_created_hooks.append(_ensure_space_defaults)
        dashboard_cards.card_providers.append(worker_cards)
        # After the portal's built-ins (the Default space) exist.
        post_migrate.connect(_ensure_all_space_defaults, sender=self, dispatch_uid="infrastructure-defaults")
