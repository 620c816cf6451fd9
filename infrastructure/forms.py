"""Forms of the infrastructure pages. They check shapes only; the services decide what is allowed,
and their ValidationError keys (name, worker_pool_ids, uri, …) are the field names used here."""

from __future__ import annotations

from django import forms

from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from infrastructure.services import validation
from portal.forms import BootstrapFormMixin

Style = Worker.CommunicationStyle


class WorkerPoolForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    pool_type = forms.ChoiceField(
        choices=WorkerPool.PoolType.choices,
        initial=WorkerPool.PoolType.STATIC,
        label="Type",
        help_text="Static pools hold the workers you register; dynamic pools lease workers on demand.",
    )
    worker_type = forms.CharField(
        required=False,
        max_length=100,
        label="Worker type",
        help_text="The kind of worker a dynamic pool leases, e.g. ubuntu-22.04.",
    )


class WorkerPoolEditForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    worker_type = forms.CharField(max_length=100, label="Worker type")

    def __init__(self, *args, pool: WorkerPool, **kwargs):
        super().__init__(*args, **kwargs)
        if pool.pool_type != WorkerPool.PoolType.DYNAMIC:
            del self.fields["worker_type"]


class WorkerFilterForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(
        required=False,
        label="Name contains",
        widget=forms.TextInput(attrs={"placeholder": "Search by name", "type": "search"}),
    )
    pool = forms.ModelChoiceField(queryset=WorkerPool.objects.none(), required=False, empty_label="Any pool")
    health_status = forms.ChoiceField(
        required=False, label="Health", choices=[("", "Any health")] + list(Worker.HealthStatus.choices)
    )
    communication_style = forms.ChoiceField(
        required=False, label="Communication style", choices=[("", "Any style")] + list(Style.choices)
    )
    disabled = forms.ChoiceField(
        required=False,
        label="Enabled",
        choices=[("", "Enabled or disabled"), ("no", "Enabled only"), ("yes", "Disabled only")],
    )

    def __init__(self, *args, space, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = WorkerPool.objects.filter(space=space).order_by("sort_order", "name")

    def filter(self, workers):
        """Narrows a queryset of workers by the valid filters (call after is_valid)."""
        f = self.cleaned_data
        if f.get("name"):
            workers = workers.filter(name__icontains=f["name"].strip())
        if f.get("pool"):
            workers = workers.filter(worker_pools=f["pool"])
        if f.get("health_status"):
            workers = workers.filter(health_status=f["health_status"])
        if f.get("communication_style"):
            workers = workers.filter(communication_style=f["communication_style"])
        if f.get("disabled"):
            workers = workers.filter(is_disabled=f["disabled"] == "yes")
        return workers


class _WorkerForm(BootstrapFormMixin, forms.Form):
    """What every worker has: a name, its pools and its machine policy."""

    name = forms.CharField(max_length=200)
    worker_pool_ids = forms.ModelMultipleChoiceField(
        queryset=WorkerPool.objects.none(),
        label="Worker pools",
        widget=forms.SelectMultiple(attrs={"size": 4}),
        help_text="Static pools of this space. Hold Ctrl (⌘ on a Mac) to choose several.",
    )
    machine_policy_id = forms.ModelChoiceField(
        queryset=MachinePolicy.objects.none(), label="Machine policy", empty_label=None
    )

    def __init__(self, *args, space, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["worker_pool_ids"].queryset = WorkerPool.objects.filter(
            space=space, pool_type=WorkerPool.PoolType.STATIC
        ).order_by("sort_order", "name")
        self.fields["machine_policy_id"].queryset = MachinePolicy.objects.filter(space=space)


class TentacleWorkerForm(_WorkerForm):
    uri = forms.CharField(max_length=300, label="URI")
    thumbprint = forms.CharField(
        max_length=200,
        help_text="The agent's certificate thumbprint, as its `show-thumbprint` command prints it on the worker.",
    )

    def __init__(self, *args, style: str, **kwargs):
        super().__init__(*args, **kwargs)
        uri = self.fields["uri"]
        if style == Style.LISTENING:
            uri.widget.attrs["placeholder"] = "https://worker.example.com:10933/"
            uri.help_text = "Where the server reaches the agent: https://HOST:10933/."
        else:
            uri.widget.attrs["placeholder"] = "poll://abcdefghij0123456789/"
            uri.help_text = 'poll:// and the agent\'s subscription id ("Subscription" in its tentacle.json), then /.'
        self.fields["thumbprint"].widget.attrs.update(
            {"placeholder": "40 hexadecimal characters", "class": "form-control font-monospace"}
        )


class SshWorkerForm(_WorkerForm):
    """Two stages: first the endpoint, whose host key is discovered; then the fingerprint, to be confirmed."""

    host = forms.CharField(max_length=255, widget=forms.TextInput(attrs={"placeholder": "build-01.example.com"}))
    port = forms.IntegerField(min_value=1, max_value=65535, initial=22)
    account_id = forms.ModelChoiceField(
        queryset=Account.objects.none(),
        label="Account",
        empty_label="Choose an SSH account",
        help_text="An SSH key pair or username/password account of this space.",
    )

    def __init__(self, *args, space, confirming: bool = False, **kwargs):
        super().__init__(*args, space=space, **kwargs)
        self.fields["account_id"].queryset = Account.objects.filter(space=space, account_type__in=Account.SSH_TYPES)
        self.confirming = confirming
        if confirming:
            self.fields["fingerprint"] = forms.CharField(
                max_length=200,
                label="Host key fingerprint",
                widget=forms.TextInput(attrs={"readonly": True, "class": "form-control font-monospace"}),
            )
            # host:port the fingerprint was discovered for, so a changed host is never pinned to another's key.
            self.fields["discovered_endpoint"] = forms.CharField(widget=forms.HiddenInput)
            self.fields["confirm_fingerprint"] = forms.BooleanField(
                label="I have compared this fingerprint with the host's own (ssh-keygen -lf) and trust it",
                error_messages={
                    "required": "Tick this box once you have checked the fingerprint: it is pinned, and "
                    "the server will refuse any other key."
                },
            )
            _bootstrap_added_fields(self)

    def clean_host(self):
        host = self.cleaned_data["host"].strip()
        if error := validation.host_error(host):
            raise forms.ValidationError(error)
        return host

    def clean(self):
        data = super().clean()
        if (
            self.confirming
            and data.get("host")
            and data.get("port")
            and data.get("discovered_endpoint") != endpoint_key(data["host"], data["port"])
        ):
            self.add_error(
                "host", "The host or port changed after its key was discovered: discover the host key again."
            )
        return data


def endpoint_key(host: str, port: int) -> str:
    return f"{host}:{port}"


def _bootstrap_added_fields(form: forms.Form) -> None:
    """BootstrapFormMixin styles the fields a form is declared with; these were added in __init__."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.CheckboxInput):
            widget.attrs.setdefault("class", "form-check-input")
        elif isinstance(widget, forms.Select):
            widget.attrs.setdefault("class", "form-select")
        elif not isinstance(widget, forms.HiddenInput):
            widget.attrs.setdefault("class", "form-control")


class WorkerEditForm(_WorkerForm):
    """Edit an existing worker; the endpoint fields follow its communication style."""

    def __init__(self, *args, space, style: str, **kwargs):
        super().__init__(*args, space=space, **kwargs)
        if style == Style.SSH:
            self.fields["host"] = forms.CharField(max_length=255)
            self.fields["port"] = forms.IntegerField(min_value=1, max_value=65535)
            self.fields["account_id"] = forms.ModelChoiceField(
                queryset=Account.objects.filter(space=space, account_type__in=Account.SSH_TYPES), label="Account"
            )
            self.fields["fingerprint"] = forms.CharField(
                max_length=200,
                label="Host key fingerprint",
                help_text="SHA256:… as `ssh-keygen -lf` prints it on the host.",
            )
        else:
            self.fields["uri"] = forms.CharField(max_length=300, label="URI")
            self.fields["thumbprint"] = forms.CharField(max_length=200)
        for name in ("fingerprint", "thumbprint"):
            if name in self.fields:
                self.fields[name].widget.attrs["class"] = "form-control font-monospace"
        _bootstrap_added_fields(self)


class MachinePolicyForm(BootstrapFormMixin, forms.Form):
    """Limits are the service's (its messages name them); the form only checks that numbers are numbers."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    health_check_interval = forms.IntegerField(label="Check health every (seconds)")
    health_check_type = forms.ChoiceField(choices=MachinePolicy.HealthCheckType.choices, label="Health check")
    bash_health_check_script = forms.CharField(
        required=False,
        label="Bash health check script",
        widget=forms.Textarea(attrs={"rows": 6, "class": "form-control font-monospace", "spellcheck": "false"}),
        help_text="Runs on every worker at each check. "
        'Exit non-zero for Unhealthy; `write_warning "…"` for Has warnings.',
    )
    connect_timeout = forms.IntegerField(label="Connect timeout (seconds)")
    retry_count = forms.IntegerField(label="Connection retries")
    retry_wait = forms.IntegerField(label="Wait between retries (seconds)")
    polling_request_queue_timeout = forms.IntegerField(
        label="Polling request queue timeout (seconds)",
        help_text="How long a request waits for a polling tentacle to collect it before it fails.",
    )
    connectivity_behavior = forms.ChoiceField(
        choices=MachinePolicy.ConnectivityBehavior.choices, label="During health checks"
    )
    delete_behavior = forms.ChoiceField(choices=MachinePolicy.DeleteBehavior.choices, label="Clean up")
    delete_after = forms.IntegerField(label="Delete after unavailable for (seconds)")

    SECTIONS = [
        ("Health check", ["health_check_interval", "health_check_type", "bash_health_check_script"]),
        (
            "Connectivity",
            ["connect_timeout", "retry_count", "retry_wait", "polling_request_queue_timeout", "connectivity_behavior"],
        ),
        ("Clean up unavailable workers", ["delete_behavior", "delete_after"]),
    ]

    def sections(self):
        return [(title, [self[name] for name in names]) for title, names in self.SECTIONS]


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value back, not even the one just posted (as PasswordInput does)."""

    def format_value(self, value):
        return None


class AccountForm(BootstrapFormMixin, forms.Form):
    """Secrets are write-only: they are never put back into the form, and empty means keep the stored one."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False)
    account_type = forms.ChoiceField(choices=Account.AccountType.choices, label="Type")
    username = forms.CharField(required=False, max_length=100)
    # Secrets are taken exactly as typed (strip=False): a key's final newline or a password's spaces matter.
    private_key = forms.CharField(
        required=False,
        strip=False,
        label="Private key",
        widget=WriteOnlyTextarea(
            attrs={
                "rows": 5,
                "class": "form-control font-monospace",
                "spellcheck": "false",
                "placeholder": "-----BEGIN OPENSSH PRIVATE KEY-----",
            }
        ),
        help_text="OpenSSH or PEM; RSA, ECDSA or Ed25519.",
    )
    passphrase = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Only if the private key is encrypted.",
    )
    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False), label="Password or token"
    )

    def __init__(self, *args, account: Account | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account
        if account is not None:
            # An account's type cannot change; show it, but take it from the stored account.
            self.fields["account_type"].disabled = True
            self.fields["account_type"].initial = account.account_type
            stored = "Stored encrypted and never shown. Leave empty to keep it; type a new one to replace it."
            if account.private_key_encrypted:
                self.fields["private_key"].help_text = stored
                self.fields["private_key"].widget.attrs["placeholder"] = "•••• stored"
            if account.password_encrypted:
                self.fields["password"].help_text = stored
                self.fields["password"].widget.attrs["placeholder"] = "•••• stored"

    def secrets(self) -> dict[str, str | None]:
        """The secrets to pass to save_account: None keeps what is stored."""
        d = self.cleaned_data
        return {
            "private_key": d["private_key"] or None,
            "passphrase": d["passphrase"] if d["private_key"] else None,
            "password": d["password"] or None,
        }
