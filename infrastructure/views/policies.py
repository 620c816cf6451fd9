"""Machine Policies: list, add, edit, delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from infrastructure.forms import MachinePolicyForm
from infrastructure.models import MachinePolicy
from infrastructure.services import policies
from infrastructure.views.shortcuts import get_machine_policy_in_space, space_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import read_only, refuse, submit


@space_page(P.MACHINE_POLICY_VIEW)
def machinepolicy_list(request, space):
    return render(
        request,
        "infrastructure/machinepolicies.html",
        {
            "space": space,
            "policies": MachinePolicy.objects.filter(space=space).annotate(worker_count=Count("workers")),
            "may_edit": may(request, P.MACHINE_POLICY_EDIT),
        },
    )


@space_page(P.MACHINE_POLICY_VIEW)
def machinepolicy_edit(request, space, pk: int | None = None):
    """Add (no pk) or edit. Without MachinePolicyEdit the form is shown read-only."""
    policy = get_machine_policy_in_space(space, pk) if pk else None
    if policy is None:
        require_permission(request.user, P.MACHINE_POLICY_EDIT, space=space)
    may_edit = may(request, P.MACHINE_POLICY_EDIT)
    source = policy or MachinePolicy(space=space)  # a new policy starts from the model's defaults
    form, status = MachinePolicyForm(initial={f: getattr(source, f) for f in policies.FIELDS}), 200
    if request.method == "POST":
        require_permission(request.user, P.MACHINE_POLICY_EDIT, space=space)
        form = MachinePolicyForm(request.POST)

        def save(data):
            if policy:
                return policies.update_machine_policy(actor=request.user, policy=policy, **data)
            return policies.create_machine_policy(actor=request.user, space=space, **data)

        if saved := submit(form, save):
            messages.success(request, f"Machine policy {saved.name} saved.")
            return redirect(space_url(space, "machinepolicies"))
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "infrastructure/machinepolicy_edit.html",
        {"space": space, "policy": policy, "form": form, "may_edit": may_edit},
        status=status,
    )


@space_page(P.MACHINE_POLICY_EDIT)
@require_POST
def machinepolicy_delete(request, space, pk: int):
    policy = get_machine_policy_in_space(space, pk)
    try:
        policies.delete_machine_policy(actor=request.user, policy=policy)
    except ValidationError as error:
        refuse(request, error)
        return redirect(space_url(space, "machinepolicy", policy.pk))
    messages.success(request, f"Machine policy {policy.name} deleted.")
    return redirect(space_url(space, "machinepolicies"))
