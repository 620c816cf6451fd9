from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from portal import signals  # noqa: F401  (login audit)
        from portal.services.bootstrap import ensure_built_ins  # models are loaded only once ready() runs

        post_migrate.connect(ensure_built_ins, sender=self, dispatch_uid="portal-built-ins")
