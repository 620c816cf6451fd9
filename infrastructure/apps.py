from django.apps import AppConfig
from django.db.models.signals import post_migrate


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

    every, _ = IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name="Health checks due by machine policy",
                                          defaults={"task": "infrastructure.run_due_health_checks", "interval": every,
                                                    "enabled": True})


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
