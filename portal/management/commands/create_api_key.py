"""`manage.py create_api_key --user NAME --purpose TEXT`: print a new API key, as Octopus's server CLI does."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from portal.models import User
from portal.services.api_keys import create_api_key


class Command(BaseCommand):
    help = "Create an API key for a user and print it (once)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="the username the key acts as")
        parser.add_argument("--purpose", required=True, help="what the key is for")
        parser.add_argument(
            "--expires-in-days", type=int, default=None, help="days until the key expires (default: never)"
        )

    def handle(self, *args, user, purpose, expires_in_days, **options):
        owner = User.objects.filter(username=user, is_active=True).first()
        if owner is None:
            raise CommandError(f"No active user named {user!r}.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be 1 or more.")
        expires = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            _, key = create_api_key(actor=owner, user=owner, purpose=purpose, expires=expires)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(key)
