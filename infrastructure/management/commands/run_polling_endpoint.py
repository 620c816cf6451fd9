"""`manage.py run_polling_endpoint`: where polling tentacles connect (port 10943 by default)."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from infrastructure.transports.polling_endpoint import serve_polling_endpoint


class Command(BaseCommand):
    help = "Serve the polling endpoint for polling tentacles (mutual TLS)."
    # Django's checks would import every URL, view and API module into this process for good (tens of MB);
    # `manage.py serve`, `migrate` and `check` run them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=settings.REEF_POLLING_BIND)
        parser.add_argument("--port", type=int, default=settings.REEF_POLLING_PORT)

    def handle(self, *args, bind, port, **options):
        endpoint = serve_polling_endpoint(bind, port, settings.REDIS_URL)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        threading.Thread(target=endpoint.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
        self.stdout.write(f"Polling endpoint listening on {bind}:{endpoint.server_address[1]}")
        stop.wait()
        endpoint.shutdown()
        endpoint.server_close()
