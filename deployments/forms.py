"""Forms of the project, environment and library pages. They check shapes; the catalog services decide what
is allowed, and their ValidationError keys are these forms' field names."""

from __future__ import annotations

from django import forms
from django.db.models import Q

from deployments.models import DeploymentTarget, Environment, Package, Step, Variable
from infrastructure.models import Worker, WorkerPool
from portal.forms import BootstrapFormMixin
from portal.models import Team

MONOSPACE = {"class": "form-control font-monospace", "spellcheck": "false"}


class NameForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class StepForm(BootstrapFormMixin, forms.Form):
    """The step editor, worded as Octopus words it."""

    name = forms.CharField(max_length=200, label="Step name")
    action_type = forms.ChoiceField(choices=Step.ActionType.choices, label="Step type")
    location = forms.ChoiceField(
        label="Execution location",
        widget=forms.RadioSelect,
        initial=Step.Location.WORKER,
        choices=[
            (Step.Location.WORKER, "Run once on a worker"),
            (Step.Location.ON_BEHALF, "Run on a worker on behalf of each deployment target"),
            (Step.Location.SERVER, "Run on the server"),
        ],
    )
    pool_source = forms.ChoiceField(
        label="Worker pool",
        widget=forms.RadioSelect,
        initial="direct",
        required=False,
        choices=[
            ("direct", "Runs on a worker from a specific worker pool"),
            ("variable", "Runs on a worker from a pool selected via a variable"),
        ],
    )
    worker_pool = forms.ModelChoiceField(queryset=WorkerPool.objects.none(), required=False, label="Worker pool")
    worker_pool_variable = forms.CharField(
        required=False,
        max_length=200,
        label="Worker Pool variable",
        widget=forms.TextInput(attrs={"list": "pool-variables"}),
        help_text="The name of a Worker Pool variable of this project; scoped per environment, it picks the pool.",
    )
    target_roles = forms.CharField(
        required=False, label="On behalf of target roles", help_text="comma-separated, e.g. web-server, eu-region"
    )
    syntax = forms.ChoiceField(choices=Step.Syntax.choices, label="Script language")
    script_body = forms.CharField(
        required=False, label="Inline script", widget=forms.Textarea(attrs={"rows": 10, **MONOSPACE})
    )
    script_parameters = forms.CharField(
        required=False,
        max_length=1000,
        label="Script parameters",
        help_text="passed to the script as arguments; #{Variable} substitution applies",
    )
    packages = forms.CharField(
        required=False,
        label="Referenced packages",
        help_text="package ids from the built-in feed, comma-separated; id@version pins a version",
    )
    start_with_previous = forms.BooleanField(required=False, label="Start with the previous step (run in parallel)")
    condition = forms.ChoiceField(choices=Step.Condition.choices, label="Run condition")
    condition_variable = forms.CharField(required=False, label="Variable expression", help_text="e.g. #{RunMigrations}")
    max_parallelism = forms.IntegerField(
        min_value=1,
        max_value=1000,
        initial=10,
        label="Maximum parallelism",
        help_text="Octopus.Action.MaxParallelism: invocations at once when running on behalf of targets",
    )
    instructions = forms.CharField(
        required=False,
        label="Instructions",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="manual intervention: what the reviewer checks before proceeding",
    )
    is_disabled = forms.BooleanField(required=False, label="Disable this step")
    responsible_teams = forms.MultipleChoiceField(
        required=False,
        label="Responsible teams",
        widget=forms.SelectMultiple(attrs={"size": 3}),
        help_text="manual intervention: only their members may answer (none: anyone who may deploy)",
    )
    script_source = forms.ChoiceField(
        choices=[("Inline", "Inline source code"), ("Package", "Script file inside a package")],
        initial="Inline",
        required=False,
        label="Script source",
    )
    script_file_name = forms.CharField(
        required=False,
        max_length=300,
        label="Script file name",
        help_text="the path inside the first referenced package, e.g. scripts/deploy.sh",
    )

    def __init__(self, *args, space, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["responsible_teams"].choices = [
            (t.octopus_id, t.name) for t in Team.objects.filter(Q(space=space) | Q(space__isnull=True))
        ]
        self.fields["worker_pool"].queryset = WorkerPool.objects.filter(space=space).order_by("sort_order", "name")
        self.package_ids = sorted(set(Package.objects.filter(space=space).values_list("package_id", flat=True)))

    def service_values(self) -> dict:
        d = dict(self.cleaned_data)
        if d["action_type"] != Step.ActionType.SCRIPT or d["location"] == Step.Location.SERVER:
            d["worker_pool"], d["worker_pool_variable"] = None, ""  # hidden fields of another location are not meant
        elif d.pop("pool_source", "direct") == "variable":
            d["worker_pool"] = None
        else:
            d["worker_pool_variable"] = ""
        d.pop("pool_source", None)
        d["script_source"] = d.get("script_source") or "Inline"
        d["target_roles"] = [r.strip() for r in d["target_roles"].split(",") if r.strip()]
        packages = []
        for reference in [p.strip() for p in d.pop("packages").split(",") if p.strip()]:
            package_id, _, version = reference.partition("@")
            packages.append({"PackageId": package_id.strip(), "Version": version.strip()})
        d["packages"] = packages
        return d

    @staticmethod
    def initial_for(step: Step) -> dict:
        initial = {
            field: getattr(step, field)
            for field in (
                "name",
                "action_type",
                "location",
                "worker_pool",
                "worker_pool_variable",
                "syntax",
                "script_body",
                "script_parameters",
                "start_with_previous",
                "condition",
                "condition_variable",
                "max_parallelism",
                "instructions",
                "is_disabled",
                "responsible_teams",
                "script_source",
                "script_file_name",
            )
        }
        initial["pool_source"] = "variable" if step.worker_pool_variable else "direct"
        initial["target_roles"] = ", ".join(step.target_roles)
        initial["packages"] = ", ".join(
            p["PackageId"] + (f"@{p['Version']}" if p.get("Version") else "") for p in step.packages
        )
        return initial


class VariableForm(BootstrapFormMixin, forms.Form):
    """A Sensitive value is write-only: never rendered back, not even after a refused post; blank keeps the stored
    one."""

    name = forms.CharField(max_length=200)
    type = forms.ChoiceField(choices=Variable.Type.choices, initial=Variable.Type.TEXT)
    value = forms.CharField(required=False, strip=False, widget=forms.TextInput(attrs={"autocomplete": "off"}))
    worker_pool = forms.ModelChoiceField(queryset=WorkerPool.objects.none(), required=False, label="Worker pool")
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.none(),
        required=False,
        label="Scope: environments",
        widget=forms.SelectMultiple(attrs={"size": 3}),
        help_text="None chosen: every environment.",
    )

    def __init__(self, *args, space, variable: Variable | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["worker_pool"].queryset = WorkerPool.objects.filter(space=space).order_by("sort_order", "name")
        self.fields["environments"].queryset = Environment.objects.filter(space=space)
        posted_type = self.data.get(self.add_prefix("type")) if self.is_bound else None
        sensitive = posted_type == Variable.Type.SENSITIVE or (
            posted_type is None and variable is not None and variable.is_sensitive
        )
        if sensitive or (variable is not None and variable.is_sensitive):
            self.fields["value"].widget = forms.PasswordInput(
                render_value=False, attrs={"class": "form-control", "autocomplete": "new-password"}
            )
        if variable is not None and variable.is_sensitive:
            self.fields["value"].widget.attrs["placeholder"] = "********"
            self.fields[
                "value"
            ].help_text = "Stored encrypted and never shown. Leave blank to keep it; type a new value to replace it."
        else:
            self.fields["value"].help_text = "Sensitive values are stored encrypted and never shown again."

    @staticmethod
    def initial_for(variable: Variable) -> dict:
        return {
            "name": variable.name,
            "type": variable.type,
            "worker_pool": variable.worker_pool,
            "value": "" if variable.is_sensitive or variable.type == Variable.Type.WORKER_POOL else variable.value,
            "environments": list(variable.environments.all()),
        }


class ReleaseForm(BootstrapFormMixin, forms.Form):
    version = forms.CharField(
        max_length=50, required=False, help_text="Blank: the next number after the latest release."
    )
    release_notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Release notes")


class DeployForm(BootstrapFormMixin, forms.Form):
    environment = forms.ModelChoiceField(queryset=Environment.objects.none(), empty_label=None)

    def __init__(self, *args, space, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environment"].queryset = Environment.objects.filter(space=space)


class ScriptConsoleForm(BootstrapFormMixin, forms.Form):
    worker_pool = forms.ModelChoiceField(
        queryset=WorkerPool.objects.none(),
        required=False,
        label="On a worker from the pool",
        help_text="Chosen by the usual rules: a healthy worker with the fewest leases.",
    )
    workers = forms.ModelMultipleChoiceField(
        queryset=Worker.objects.none(),
        required=False,
        label="Or on each of these workers",
        widget=forms.SelectMultiple(attrs={"size": 5}),
    )
    syntax = forms.ChoiceField(choices=Step.Syntax.choices, label="Script language")
    script_body = forms.CharField(label="Script", widget=forms.Textarea(attrs={"rows": 10, **MONOSPACE}))

    def __init__(self, *args, space, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["worker_pool"].queryset = WorkerPool.objects.filter(space=space).order_by("sort_order", "name")
        self.fields["workers"].queryset = Worker.objects.filter(space=space).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("worker_pool") is None and not data.get("workers"):
            self.add_error("worker_pool", "Choose a worker pool, or some workers.")
        elif data.get("worker_pool") is not None and data.get("workers"):
            self.add_error("workers", "Choose a worker pool or some workers, not both.")
        return data


class DeploymentTargetForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=DeploymentTarget.Kind.choices, label="Kind")
    roles = forms.CharField(
        help_text="Comma-separated, e.g. web-server, eu-region. Steps find targets by role.", max_length=500
    )
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.none(), widget=forms.SelectMultiple(attrs={"size": 3})
    )
    uri = forms.CharField(
        required=False,
        max_length=300,
        label="URI",
        help_text="https://HOST:10933/ for a listening tentacle, poll://SUBSCRIPTION/ for a polling one.",
    )
    thumbprint = forms.CharField(
        required=False,
        max_length=100,
        label="Thumbprint",
        widget=forms.TextInput(attrs={"class": "form-control font-monospace"}),
    )
    is_disabled = forms.BooleanField(required=False, label="Disabled (steps skip this target)")

    def __init__(self, *args, space, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["environments"].queryset = Environment.objects.filter(space=space)

    def service_values(self) -> dict:
        return {**self.cleaned_data, "roles": [r.strip() for r in self.cleaned_data["roles"].split(",") if r.strip()]}

    @staticmethod
    def initial_for(target: DeploymentTarget) -> dict:
        return {
            "name": target.name,
            "kind": target.kind,
            "roles": ", ".join(target.roles),
            "uri": target.uri,
            "thumbprint": target.thumbprint,
            "environments": list(target.environments.all()),
            "is_disabled": target.is_disabled,
        }


class PackageForm(BootstrapFormMixin, forms.Form):
    package_id = forms.CharField(max_length=100, label="Package id")
    version = forms.CharField(max_length=50)
    file = forms.FileField(help_text="A .zip or .tar.gz archive; it is checked, and stored by its SHA-256.")
