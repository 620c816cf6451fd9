"""The Add Worker wizard, as Octopus's: platform → communication style → install or register.

Tentacles get a ready install command (the agent registers itself with an API key) and a form to
register one by hand. SSH workers are registered in two steps: Reef connects to the host and shows the
host key's fingerprint; only once the user confirms it is the worker saved with that fingerprint pinned.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shlex
import socket
from urllib.parse import urlparse

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.http.request import validate_host
from django.shortcuts import redirect, render

from infrastructure.distribution import agent_facing_url, polling_address
from infrastructure.forms import SshWorkerForm, TentacleWorkerForm, endpoint_key
from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from infrastructure.services import workers
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.workers import Endpoint, WorkerSpec
from infrastructure.transports import TransportError
from infrastructure.transports.ssh import discover_host_key
from infrastructure.views.shortcuts import space_url
from portal.permissions import Permission as P
from portal.views.decorators import space_page
from portal.views.forms import submit

log = logging.getLogger(__name__)
Style = Worker.CommunicationStyle

PLATFORMS = {"linux": "Linux", "mac": "macOS", "windows": "Windows"}
STYLES = {"listening": Style.LISTENING, "polling": Style.POLLING, "ssh": Style.SSH}
AGENT_PLATFORMS = ("linux", "mac")  # where the tentacle agent runs today
SSH_PLATFORMS = ("linux", "mac")  # the SSH transport runs bash
DISCOVERY_TIMEOUT = 10  # seconds: a page waits for this, so less than a policy's connect timeout


@space_page(P.WORKER_EDIT)
def worker_add(request, space):
    """Steps 1 and 2: where the worker runs, then how the server talks to it."""
    platform = request.GET.get("platform")
    return render(
        request,
        "infrastructure/worker_add.html",
        {
            "space": space,
            "platforms": PLATFORMS,
            "platform": platform if platform in PLATFORMS else None,
            "platform_label": PLATFORMS.get(platform or ""),
            "ssh_platforms": SSH_PLATFORMS,
            "agent_platforms": AGENT_PLATFORMS,
            "pool_query": _pool_query(request),
        },
    )


@space_page(P.WORKER_EDIT)
def worker_add_endpoint(request, space, platform: str, style: str):
    """Step 3: install the agent or register the worker by hand (tentacles); discover and confirm (SSH)."""
    if platform not in PLATFORMS or style not in STYLES or (style == "ssh" and platform not in SSH_PLATFORMS):
        raise Http404("No such platform and communication style.")
    if style == "ssh":
        return _add_ssh_worker(request, space, platform)
    return _add_tentacle(request, space, platform, STYLES[style])


def _wizard_context(request, space, platform: str, style: str) -> dict:
    return {
        "space": space,
        "platform": platform,
        "platform_label": PLATFORMS[platform],
        "style": style,
        "style_label": Style(STYLES[style]).label,
        "pool_query": _pool_query(request),
    }


def _pool_query(request) -> str:
    """The pool the wizard was started from (a pool's Add worker button), carried from step to step."""
    pool = request.GET.get("pool", "")
    return f"pool={pool}" if pool.isdigit() else ""


# Tentacles ------------------------------------------------------------------------------------


def _add_tentacle(request, space, platform: str, communication_style: str):
    style = "listening" if communication_style == Style.LISTENING else "polling"
    static_pools = _static_pools(space)
    pool = _chosen_pool(static_pools, request.GET.get("pool"))
    initial = {"worker_pool_ids": [pool] if pool else [], "machine_policy_id": _default_policy(space)}
    form, status = TentacleWorkerForm(initial=initial, space=space, style=communication_style), 200
    if request.method == "POST":
        form = TentacleWorkerForm(request.POST, space=space, style=communication_style)
        if form.is_valid():
            d = form.cleaned_data
            endpoint = Endpoint(communication_style=communication_style, uri=d["uri"], thumbprint=d["thumbprint"])
            worker = _register(request, space, form, endpoint)
            if worker is not None:
                messages.success(request, f"Worker {worker.name} added. Check its health to see it turn Healthy.")
                return redirect(space_url(space, "worker", worker.pk))
        status = 400
    thumbprint = current_server_certificate().thumbprint
    base = agent_facing_url(request)
    polling = communication_style == Style.POLLING
    return render(
        request,
        "infrastructure/worker_add_tentacle.html",
        {
            **_wizard_context(request, space, platform, style),
            "form": form,
            "pools": static_pools,
            "pool": pool,
            "server_thumbprint": thumbprint,
            "agent_runs_here": platform in AGENT_PLATFORMS,
            "polling_address": polling_address(base),
            "polling_port": settings.REEF_POLLING_PORT,
            "second_host": second_host_advice(base, polling=polling),
            "install_command": install_command(
                base=base,
                space_name=space.name,
                pool_name=pool.name if pool else "",
                thumbprint=thumbprint,
                polling=polling,
                polling_address=polling_address(base) if polling else "",
            ),
        },
        status=status,
    )


def _default_policy(space) -> MachinePolicy | None:
    return MachinePolicy.objects.filter(space=space, is_default=True).first()


def _static_pools(space) -> list[WorkerPool]:
    return list(
        WorkerPool.objects.filter(space=space, pool_type=WorkerPool.PoolType.STATIC).order_by("sort_order", "name")
    )


def _chosen_pool(static_pools: list[WorkerPool], chosen: str | None) -> WorkerPool | None:
    by_pk = {str(p.pk): p for p in static_pools}
    if chosen in by_pk:
        return by_pk[chosen]
    return next((p for p in static_pools if p.is_default), static_pools[0] if static_pools else None)


_PLAIN = re.compile(r"[\w .,()@+:/-]*")


def _quoted(value: str) -> str:
    """Double quotes as people write them, unless the value holds something the shell would expand."""
    return f'"{value}"' if _PLAIN.fullmatch(value) else shlex.quote(value)


def install_command(
    *, base: str, pool_name: str, space_name: str, thumbprint: str, polling: bool, polling_address: str = ""
) -> str:
    command = (
        f"curl -fsSL {base}/infrastructure/tentacle/install.sh | sudo bash -s -- --server {base} "
        f"--apikey API-YOURKEY --workerpool {_quoted(pool_name)} --space {_quoted(space_name)} "
        f"--server-thumbprint {thumbprint}"
    )
    if not polling:
        return command
    return command + " --polling" + (f" --polling-address {polling_address}" if polling_address else "")


def _is_loopback(host: str | None) -> bool:
    host = (host or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def second_host_advice(base: str, *, polling: bool) -> dict | None:
    """What to set so a worker on another machine can reach this server, when it can only be reached
    on loopback: the address in the commands is this machine's own, or Reef listens on loopback only.
    None when a second host needs nothing more (behind a proxy, loopback listening is the proxy's job)."""
    parsed = urlparse(base)
    address_is_loopback = _is_loopback(parsed.hostname)
    binds_loopback = _is_loopback(settings.REEF_BIND) and not settings.SECURE_PROXY_SSL_HEADER
    polling_binds_loopback = polling and _is_loopback(settings.REEF_POLLING_BIND)
    if not (address_is_loopback or binds_loopback or polling_binds_loopback):
        return None
    host = socket.gethostname() if address_is_loopback else parsed.hostname
    host_part = f"[{host}]" if ":" in host else host
    netloc = host_part + (f":{parsed.port}" if parsed.port else "")
    public_url = f"{parsed.scheme}://{netloc}"
    reasons, settings_to_set = [], []
    if address_is_loopback:
        reasons.append(
            f"The commands below use {base}, this machine's own loopback address: another host cannot reach it."
        )
    if binds_loopback:
        reasons.append(
            f"Reef listens on {settings.REEF_BIND} only (REEF_BIND), so nothing outside this machine can connect."
        )
        settings_to_set.append(("REEF_BIND", "0.0.0.0", "listen on every interface"))
    if polling_binds_loopback:
        reasons.append(f"The polling endpoint listens on {settings.REEF_POLLING_BIND} only (REEF_POLLING_BIND).")
        settings_to_set.append(("REEF_POLLING_BIND", "0.0.0.0", "accept polling tentacles from other hosts"))
    if not validate_host(host, settings.ALLOWED_HOSTS):
        settings_to_set.append(
            ("ALLOWED_HOSTS", ",".join([*settings.ALLOWED_HOSTS, host]), "the names Reef answers to")
        )
    if address_is_loopback:
        settings_to_set.append(
            ("REEF_PUBLIC_URL", public_url, "the address agents use; this page's commands then carry it")
        )
    return {
        "reasons": reasons,
        "settings": settings_to_set,
        "public_url": public_url,
        "host": host,
        "web_endpoint": netloc,
        "polling_endpoint": f"{host_part}:{settings.REEF_POLLING_PORT}",
    }


# SSH ------------------------------------------------------------------------------------------


def _add_ssh_worker(request, space, platform: str):
    context = {
        **_wizard_context(request, space, platform, "ssh"),
        "has_ssh_accounts": Account.objects.filter(space=space, account_type__in=Account.SSH_TYPES).exists(),
    }
    if request.method != "POST":
        pool = _chosen_pool(_static_pools(space), request.GET.get("pool"))
        form = SshWorkerForm(
            space=space,
            initial={"machine_policy_id": _default_policy(space), "worker_pool_ids": [pool] if pool else []},
        )
        return render(request, "infrastructure/worker_add_ssh.html", {**context, "form": form})

    confirming = "add" in request.POST and bool(request.POST.get("fingerprint"))
    form = SshWorkerForm(request.POST, space=space, confirming=confirming)
    if not form.is_valid():
        return render(request, "infrastructure/worker_add_ssh.html", {**context, "form": form}, status=400)
    d = form.cleaned_data
    if not confirming:  # Discover: connect, read the host key, and ask the user to confirm it.
        try:
            key_type, fingerprint = _discover_host_key(d["host"], d["port"])
        except DiscoveryError as error:
            form.add_error("host", str(error))
            return render(request, "infrastructure/worker_add_ssh.html", {**context, "form": form}, status=400)
        confirm = SshWorkerForm(
            space=space,
            confirming=True,
            initial={
                **{
                    name: d[name]
                    for name in ("name", "worker_pool_ids", "machine_policy_id", "host", "port", "account_id")
                },
                "fingerprint": fingerprint,
                "discovered_endpoint": endpoint_key(d["host"], d["port"]),
            },
        )
        return render(
            request,
            "infrastructure/worker_add_ssh.html",
            {
                **context,
                "form": confirm,
                "discovered": {
                    "key_type": key_type,
                    "fingerprint": fingerprint,
                    "key_file": host_key_file_hint(key_type),
                },
            },
        )

    endpoint = Endpoint(
        communication_style=Style.SSH,
        host=d["host"],
        port=d["port"],
        account=d["account_id"],
        fingerprint=d["fingerprint"],
    )
    worker = _register(request, space, form, endpoint)
    if worker is None:
        return render(request, "infrastructure/worker_add_ssh.html", {**context, "form": form}, status=400)
    messages.success(request, f"Worker {worker.name} added with host key {worker.fingerprint} pinned.")
    return redirect(space_url(space, "worker", worker.pk))


class DiscoveryError(Exception):
    pass


def _discover_host_key(host: str, port: int) -> tuple[str, str]:
    """(key type, SHA256:… fingerprint) the host presents, through the SSH transport's own reading of it,
    so the fingerprint pinned here is the one the transport checks on every connection."""
    try:
        return discover_host_key(host, port, timeout=DISCOVERY_TIMEOUT)
    except TransportError as error:
        raise DiscoveryError(str(error)) from None
    except Exception as error:  # paramiko has many ways to fail; none of them may become a 500
        log.warning("host key discovery of %s:%s failed", host, port, exc_info=True)
        raise DiscoveryError(
            f"Could not read the host key of ssh://{host}:{port}/: {error or type(error).__name__}."
        ) from None


def host_key_file_hint(key_type: str) -> str:
    kind = {"ssh-ed25519": "ed25519", "ssh-rsa": "rsa", "ssh-dss": "dsa"}.get(
        key_type, "ecdsa" if key_type.startswith("ecdsa") else "*"
    )
    return f"/etc/ssh/ssh_host_{kind}_key.pub"


# Both ------------------------------------------------------------------------------------------


def _register(request, space, form, endpoint: Endpoint) -> Worker | None:
    """The worker, or None when the register service refused (the form then says why)."""
    return submit(
        form,
        lambda d: workers.register_worker(
            actor=request.user,
            space=space,
            spec=WorkerSpec(
                name=d["name"],
                endpoint=endpoint,
                worker_pools=list(d["worker_pool_ids"]),
                machine_policy=d["machine_policy_id"],
            ),
        ),
    )
