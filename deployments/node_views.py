"""Configuration ➜ Nodes: the server nodes of the cluster, as Octopus lists them."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from deployments.services.nodes import nodes_overview
from portal.permissions import Permission as P
from portal.services.access import require_permission


@login_required
def nodes(request):
    require_permission(request.user, P.CONFIGURE_SERVER)
    return render(request, "deployments/nodes.html", {"nodes": nodes_overview()})
