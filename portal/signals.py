"""Login and failed-login audit entries. Only recording here; no business rules."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from portal.models import Event
from portal.services.audit import record_event


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    record_event(actor=user, category=Event.Category.LOGIN, document=user, message=f"{user.username} logged in")


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    record_event(
        actor=None,
        category=Event.Category.LOGIN_FAILED,
        document_type="User",
        document_name=username,
        message=f"Failed login for {username!r}",
    )
