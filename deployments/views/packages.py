"""Library ➜ Packages: the built-in feed, push (upload) and delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from deployments.forms import PackageForm
from deployments.models import Package
from deployments.services import catalog
from deployments.views.shortcuts import space_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import refuse, submit


@space_page(P.FEED_VIEW)
def package_list(request, space):
    form, status = PackageForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.BUILT_IN_FEED_PUSH, space=space)
        form = PackageForm(request.POST, request.FILES)
        package = submit(
            form,
            lambda data: catalog.store_package(
                actor=request.user,
                space=space,
                package_id=data["package_id"],
                version=data["version"],
                upload=data["file"],
            ),
        )
        if package:
            messages.success(request, f"Package {package} pushed to the built-in feed.")
            return redirect(space_url(space, "packages"))
        status = 400
    return render(
        request,
        "deployments/packages.html",
        {
            "space": space,
            "packages": Package.objects.filter(space=space),
            "form": form,
            "may_push": may(request, P.BUILT_IN_FEED_PUSH),
        },
        status=status,
    )


@space_page(P.BUILT_IN_FEED_PUSH)
@require_POST
def package_delete(request, space, pk: int):
    package = get_object_or_404(Package, pk=pk, space=space)
    try:
        catalog.delete_package(actor=request.user, package=package)
    except ValidationError as error:
        refuse(request, error)
    else:
        messages.success(request, f"Package {package} deleted.")
    return redirect(space_url(space, "packages"))
