"""ASGI entry point: pages and the API over HTTP, live updates over websockets (daphne serves both)."""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from portal.request_limits import BoundedBodyMiddleware  # noqa: E402
from portal.routing import websocket_urlpatterns  # noqa: E402

if "daphne.server" in sys.modules:  # served by daphne: bound bodies in Twisted too, before daphne spools them
    from portal import daphne_bounds

    daphne_bounds.install()

application = ProtocolTypeRouter(
    {
        "http": BoundedBodyMiddleware(django_application),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
