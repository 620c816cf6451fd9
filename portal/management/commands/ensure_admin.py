"""`manage.py ensure_admin`: create the first administrator from REEF_ADMIN_USERNAME / REEF_ADMIN_PASSWORD."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from portal.services.spaces import ensure_default_space
from portal.services.users import ensure_first_administrator


class Command(BaseCommand):
    help = "Create the first administrator if there is none (prints a generated password once)."

    def handle(self, *args, **options):
        ensure_default_space()
        try:
            user, generated = ensure_first_administrator(
                username=settings.REEF_ADMIN_USERNAME or "admin",
                password=settings.REEF_ADMIN_PASSWORD or None,
            )
        except ValidationError as error:
            raise CommandError("REEF_ADMIN_PASSWORD: " + " ".join(error.messages)) from None
        if user is None:
            self.stdout.write("An administrator already exists.")
        elif generated:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created the first administrator.\n  username: {user.username}\n  password: {generated}\n"
                    "  (shown once: change it on your profile page)"
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Created the first administrator {user.username}."))
