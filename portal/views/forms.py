"""The one form flow of every page: validate the form, call one service, and show the service's refusal.

Services refuse with a ValidationError that names the field (`{"name": ["There is already …"]}`) or
none (a sentence about the whole object). A form page shows it on the form and answers 400:

    form = NameForm(request.POST)
    if project := submit(form, lambda data: catalog.create_project(actor=request.user, space=space, **data)):
        messages.success(request, f"Project {project.name} added.")
        return redirect(...)
    status = 400

A button without a form (delete, reorder, make default) shows the refusal as a message: `refuse`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError

T = TypeVar("T")


def add_refusal(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form: under the field it names when the form has that field,
    else above the form (where a field the page does not show, or the whole object, is refused)."""
    if hasattr(error, "error_dict"):
        for field, field_messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, field_messages)
    else:
        form.add_error(None, error.messages)


def submit(form: forms.Form, service: Callable[[dict], T]) -> T | None:
    """`service(form.cleaned_data)` when the form is valid: what it saved (services return the model), or None
    when the form or the service refused, and the form then carries the reasons for a 400."""
    if not form.is_valid():
        return None
    try:
        return service(form.cleaned_data)
    except ValidationError as error:
        add_refusal(form, error)
        return None


def refuse(request, error: ValidationError) -> None:
    """A service said no to a button (deleting the default pool, a policy in use, …): say why, in its words."""
    messages.error(request, " ".join(error.messages))


def read_only(form: forms.Form) -> forms.Form:
    """Show the form to someone who may view but not edit: every field disabled."""
    for field in form.fields.values():
        field.disabled = True
    return form
