"""Accounts: list, add, edit, delete. Secrets are write-only: stored encrypted, never rendered back."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from infrastructure.forms import AccountForm
from infrastructure.models import Account
from infrastructure.services import accounts
from infrastructure.views.shortcuts import get_account_in_space, space_url
from portal.permissions import Permission as P
from portal.services.access import require_permission
from portal.views.decorators import may, space_page
from portal.views.forms import read_only, refuse, submit


@space_page(P.ACCOUNT_VIEW)
def account_list(request, space):
    form, status = AccountForm(), 200
    if request.method == "POST":
        require_permission(request.user, P.ACCOUNT_EDIT, space=space)
        form = AccountForm(request.POST)
        if _save(request, space, form, account=None):
            return redirect(space_url(space, "accounts"))
        status = 400
    return render(
        request,
        "infrastructure/accounts.html",
        {
            "space": space,
            "accounts": Account.objects.filter(space=space).annotate(worker_count=Count("workers")),
            "form": form,
            "may_edit": may(request, P.ACCOUNT_EDIT),
        },
        status=status,
    )


@space_page(P.ACCOUNT_VIEW)
def account_edit(request, space, pk: int):
    account = get_account_in_space(space, pk)
    may_edit = may(request, P.ACCOUNT_EDIT)
    initial = {"name": account.name, "description": account.description, "username": account.username}
    form, status = AccountForm(initial=initial, account=account), 200
    if request.method == "POST":
        require_permission(request.user, P.ACCOUNT_EDIT, space=space)
        form = AccountForm(request.POST, account=account)
        if _save(request, space, form, account=account):
            return redirect(space_url(space, "accounts"))
        status = 400
    if not may_edit:
        read_only(form)
    return render(
        request,
        "infrastructure/account_edit.html",
        {
            "space": space,
            "account": account,
            "form": form,
            "may_edit": may_edit,
            "workers": account.workers.order_by("name")[:20],
        },
        status=status,
    )


def _save(request, space, form: AccountForm, account: Account | None) -> bool:
    saved = submit(
        form,
        lambda d: accounts.save_account(
            actor=request.user,
            space=space,
            account=account,
            name=d["name"],
            account_type=account.account_type if account else d["account_type"],
            username=d["username"],
            description=d["description"],
            **form.secrets(),
        ),
    )
    if saved:
        messages.success(
            request, f"Account {saved.name} saved. Its secrets are stored encrypted and never shown again."
        )
    return saved is not None


@space_page(P.ACCOUNT_EDIT)
@require_POST
def account_delete(request, space, pk: int):
    account = get_account_in_space(space, pk)
    try:
        accounts.delete_account(actor=request.user, account=account)
    except ValidationError as error:
        refuse(request, error)
        return redirect(space_url(space, "account", account.pk))
    messages.success(request, f"Account {account.name} deleted.")
    return redirect(space_url(space, "accounts"))
