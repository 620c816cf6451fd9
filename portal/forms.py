from __future__ import annotations

from django import forms

from portal.control_characters import multiline_validator, single_line_validator
from portal.models import Event, Space, User, UserRole


class BootstrapFormMixin:
    """Bootstrap classes on every widget, so templates can render fields generically; and no control characters in
    any text field (a multi-line one may hold tab and line breaks), refused as that field's error."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(field, forms.CharField):  # a verbatim value (strip=False) may be multi-line too
                multiline = isinstance(widget, forms.Textarea) or not field.strip
                field.validators.append(multiline_validator if multiline else single_line_validator)
            if isinstance(widget, (forms.CheckboxInput, forms.RadioSelect)):
                widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(widget, (forms.Select, forms.SelectMultiple)):
                widget.attrs.setdefault("class", "form-select")
            else:
                widget.attrs.setdefault("class", "form-control")


class SpaceForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class UserCreateForm(BootstrapFormMixin, forms.Form):
    username = forms.CharField(max_length=150)
    display_name = forms.CharField(max_length=200, required=False)
    email = forms.EmailField(required=False)
    password = forms.CharField(
        widget=forms.PasswordInput,
        required=False,
        help_text="Leave empty for a service account that signs in with API keys only.",
    )
    is_service = forms.BooleanField(required=False, label="Service account")

    def clean(self):
        data = super().clean()
        if not data.get("is_service") and not data.get("password"):
            self.add_error("password", "A person needs a password (or tick Service account).")
        return data


class UserEditForm(BootstrapFormMixin, forms.Form):
    display_name = forms.CharField(max_length=200, required=False)
    email = forms.EmailField(required=False)
    is_active = forms.BooleanField(required=False, label="Active")


class ProfileForm(BootstrapFormMixin, forms.Form):
    display_name = forms.CharField(max_length=200, required=False)
    email = forms.EmailField(required=False)


class TeamForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    space = forms.ModelChoiceField(
        queryset=Space.objects.none(), required=False, empty_label="All spaces (system team)"
    )

    def __init__(self, *args, spaces=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["space"].queryset = spaces if spaces is not None else Space.objects.all()


class TeamMemberForm(BootstrapFormMixin, forms.Form):
    user = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True))


class RoleAssignmentForm(BootstrapFormMixin, forms.Form):
    role = forms.ModelChoiceField(queryset=UserRole.objects.all())
    space = forms.ModelChoiceField(queryset=Space.objects.all(), required=False, empty_label="All spaces / system")

    def __init__(self, *args, team=None, **kwargs):
        super().__init__(*args, **kwargs)
        if team is not None and team.space is not None:
            self.fields["space"].queryset = Space.objects.filter(pk=team.space_id)
            self.fields["space"].empty_label = None
            self.fields["space"].required = True


class ApiKeyForm(BootstrapFormMixin, forms.Form):
    purpose = forms.CharField(max_length=200)
    expires = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional. Leave empty for a key that never expires.",
    )


class AuditFilterForm(BootstrapFormMixin, forms.Form):
    space = forms.ModelChoiceField(queryset=Space.objects.none(), required=False, empty_label="All spaces")
    user = forms.CharField(required=False, label="Username")
    category = forms.ChoiceField(required=False, choices=[("", "Any category")] + list(Event.Category.choices))
    document_type = forms.CharField(required=False, label="Document type")
    since = forms.DateTimeField(
        required=False, label="From", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, label="To", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    q = forms.CharField(required=False, label="Message contains")

    def __init__(self, *args, spaces=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["space"].queryset = spaces if spaces is not None else Space.objects.none()
