"""Configuration ➜ Features (the built-in worker) and Nodes (the server nodes of the cluster, as Octopus lists them)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from deployments.models import ServerConfiguration
from deployments.services import catalog
from deployments.services.nodes import nodes_overview
from infrastructure.transports.builtin import builtin_worker_account
from portal.permissions import Permission as P
from portal.services.access import has_permission, require_permission


@login_required
def features(request):
    require_permission(request.user, P.CONFIGURE_SERVER)
    if request.method == "POST":
        enabled = request.POST.get("builtin_worker") == "on"
        catalog.set_builtin_worker_enabled(actor=request.user, enabled=enabled)
        messages.success(
            request,
            "The built-in worker is "
            + (
                "on: server steps run on the server while the default pool has no workers."
                if enabled
                else "off: user scripts never run on the server."
            ),
        )
        return redirect("configuration-features")

    account, is_own_account = builtin_worker_account()
    return render(
        request,
        "deployments/features.html",
        {
            "configuration": ServerConfiguration.current(),
            "may_edit": has_permission(request.user, P.CONFIGURE_SERVER),
            "builtin_account": account,
            "builtin_is_own_account": is_own_account,
        },
    )


@login_required
def nodes(request):
    require_permission(request.user, P.CONFIGURE_SERVER)
    return render(request, "deployments/nodes.html", {"nodes": nodes_overview()})
