"""The tentacle install script and agent bundle, served without signing in: the script and the agent hold no secrets."""

from django.conf import settings
from django.http import HttpResponse

from infrastructure.distribution import BUNDLE_NAME, agent_bundle, agent_facing_url, install_script


def install_sh(request):
    response = HttpResponse(
        install_script(agent_facing_url(request), settings.REEF_POLLING_PORT),
        content_type="text/x-shellscript; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    return response


def bundle(request):
    data, sha256 = agent_bundle()
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{BUNDLE_NAME}"'
    response["X-Checksum-Sha256"] = sha256
    return response


def bundle_sha256(request):
    return HttpResponse(agent_bundle()[1] + "\n", content_type="text/plain")
