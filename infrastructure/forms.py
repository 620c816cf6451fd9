from __future__ import annotations

from django import forms

from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from portal.forms import BootstrapFormMixin


class WorkerPoolForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    pool_type = forms.ChoiceField(choices=WorkerPool.PoolType.choices, initial=WorkerPool.PoolType.STATIC, label="Type")
    worker_type = forms.CharField(required=False, max_length=100, help_text="Dynamic pools only: the kind of worker leased.")


class WorkerPoolEditForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class WorkerFilterForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(required=False, label="Name contains")
    pool = forms.ModelChoiceField(queryset=WorkerPool.objects.none(), required=False, empty_label="Any pool")
    health_status = forms.ChoiceField(required=False, choices=[("", "Any health")] + list(Worker.HealthStatus.choices))
    communication_style = forms.ChoiceField(required=False, choices=[("", "Any style")] + list(Worker.CommunicationStyle.choices))
    disabled = forms.ChoiceField(required=False, choices=[("", "Enabled or disabled"), ("no", "Enabled"), ("yes", "Disabled")])

    def __init__(self, *args, space=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = WorkerPool.objects.filter(space=space)


class _WorkerForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    worker_pool_ids = forms.ModelMultipleChoiceField(queryset=WorkerPool.objects.none(), label="Worker pools")
    machine_policy_id = forms.ModelChoiceField(queryset=MachinePolicy.objects.none(), required=False,
                                               empty_label="Default Machine Policy", label="Machine policy")

    def __init__(self, *args, space=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["worker_pool_ids"].queryset = WorkerPool.objects.filter(space=space, pool_type=WorkerPool.PoolType.STATIC)
        self.fields["machine_policy_id"].queryset = MachinePolicy.objects.filter(space=space)


class TentacleWorkerForm(_WorkerForm):
    uri = forms.CharField(max_length=300, label="URI")
    thumbprint = forms.CharField(max_length=200, help_text="The agent's certificate thumbprint (tentacle show-thumbprint).")


class SshWorkerForm(_WorkerForm):
    host = forms.CharField(max_length=255)
    port = forms.IntegerField(min_value=1, max_value=65535, initial=22)
    account_id = forms.ModelChoiceField(queryset=Account.objects.none(), label="Account")
    fingerprint = forms.CharField(required=False, widget=forms.HiddenInput)
    confirm_fingerprint = forms.BooleanField(required=False, label="I have checked this fingerprint against the host")

    def __init__(self, *args, space=None, **kwargs):
        super().__init__(*args, space=space, **kwargs)
        self.fields["account_id"].queryset = Account.objects.filter(space=space, account_type__in=Account.SSH_TYPES)


class MachinePolicyForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    health_check_interval = forms.IntegerField(min_value=60, label="Health check interval (seconds)")
    health_check_type = forms.ChoiceField(choices=MachinePolicy.HealthCheckType.choices)
    bash_health_check_script = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5, "class": "font-monospace"}),
                                               label="Bash health check script")
    connect_timeout = forms.IntegerField(min_value=1, label="Connect timeout (seconds)")
    retry_count = forms.IntegerField(min_value=0, max_value=100)
    retry_wait = forms.IntegerField(min_value=0, label="Wait between retries (seconds)")
    polling_request_queue_timeout = forms.IntegerField(min_value=5, label="Polling request queue timeout (seconds)")
    connectivity_behavior = forms.ChoiceField(choices=MachinePolicy.ConnectivityBehavior.choices, label="Unavailable machines")
    delete_behavior = forms.ChoiceField(choices=MachinePolicy.DeleteBehavior.choices, label="Clean-up")
    delete_after = forms.IntegerField(min_value=60, label="Delete after unavailable for (seconds)")


class AccountForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False)
    account_type = forms.ChoiceField(choices=Account.AccountType.choices)
    username = forms.CharField(required=False, max_length=100)
    private_key = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4, "class": "font-monospace"}),
                                  help_text="SSH key pair: the private key (OpenSSH or PEM). Empty keeps the stored one.")
    passphrase = forms.CharField(required=False, widget=forms.PasswordInput, help_text="If the key is encrypted.")
    password = forms.CharField(required=False, widget=forms.PasswordInput,
                               help_text="Username/password or token accounts. Empty keeps the stored one.")
