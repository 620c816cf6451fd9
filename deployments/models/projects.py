"""Projects, their groups and channels, their deployment and runbook processes (steps), their variables,
and the packages of the built-in feed."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from infrastructure.models import WorkerPool
from portal.models import OctopusIdMixin, Space

from .environments import Environment, Lifecycle


class ProjectGroup(OctopusIdMixin, models.Model):
    ID_PREFIX = "ProjectGroups"
    DEFAULT_NAME = "Default Project Group"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="project_groups")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["space", "name"], name="project_group_name_unique_in_space")]

    def __str__(self) -> str:
        return self.name


class Project(OctopusIdMixin, models.Model):
    ID_PREFIX = "Projects"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    description = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    project_group = models.ForeignKey(
        ProjectGroup, null=True, blank=True, on_delete=models.PROTECT, related_name="projects"
    )
    lifecycle = models.ForeignKey(
        Lifecycle,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="projects",
        help_text="empty: the space's Default Lifecycle",
    )
    is_disabled = models.BooleanField(default=False)
    process_version = models.PositiveIntegerField(
        default=0, help_text="the deployment process's Version: +1 on every change"
    )
    variable_set_version = models.PositiveIntegerField(
        default=0, help_text="the variable set's Version: +1 on every change"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["space", "name"], name="project_name_unique_in_space"),
            models.UniqueConstraint(fields=["space", "slug"], name="project_slug_unique_in_space"),
        ]

    def __str__(self) -> str:
        return self.name


class Channel(OctopusIdMixin, models.Model):
    """A project's release stream; each project has a `Default` one. Its lifecycle overrides the project's."""

    ID_PREFIX = "Channels"
    DEFAULT_NAME = "Default"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="channels")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    lifecycle = models.ForeignKey(
        Lifecycle,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="channels",
        help_text="empty: the project's lifecycle",
    )
    is_default = models.BooleanField(default=False)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="channel_name_unique_in_project")]

    def __str__(self) -> str:
        return self.name

    @property
    def space_id(self) -> int:
        return self.project.space_id


class Runbook(OctopusIdMixin, models.Model):
    """A process run against an environment without a release."""

    ID_PREFIX = "Runbooks"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runbooks")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    process_version = models.PositiveIntegerField(default=0)
    published_snapshot = models.ForeignKey(
        "RunbookSnapshot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="runbook_name_unique_in_project")]

    def __str__(self) -> str:
        return self.name


class Step(OctopusIdMixin, models.Model):
    """One step of a project's deployment process (runbook empty) or of a runbook's process; one action each."""

    ID_PREFIX = "Steps"

    class ActionType(models.TextChoices):
        SCRIPT = "Octopus.Script", "Run a Script"
        MANUAL = "Octopus.Manual", "Manual intervention required"

    class Location(models.TextChoices):
        SERVER = "Server", "Run on the server"
        WORKER = "Worker", "Run once on a worker"
        ON_BEHALF = "OnBehalfOfTargets", "Run on a worker on behalf of each deployment target"

    class Syntax(models.TextChoices):
        BASH = "Bash"
        PYTHON = "Python"
        POWERSHELL = "PowerShell"

    class Condition(models.TextChoices):
        SUCCESS = "Success", "Only run when previous steps succeed"
        ALWAYS = "Always", "Always run"
        VARIABLE = "Variable", "Run when a variable expression is true"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="steps")
    runbook = models.ForeignKey(Runbook, null=True, blank=True, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=200)
    sort_order = models.IntegerField(default=0)
    action_type = models.CharField(max_length=40, choices=ActionType.choices, default=ActionType.SCRIPT)
    location = models.CharField(max_length=30, choices=Location.choices, default=Location.WORKER)
    worker_pool = models.ForeignKey(WorkerPool, null=True, blank=True, on_delete=models.PROTECT, related_name="steps")
    worker_pool_variable = models.CharField(
        max_length=200, blank=True, help_text="the pool comes from this Worker Pool variable"
    )
    target_roles = models.JSONField(default=list, blank=True)
    syntax = models.CharField(max_length=20, choices=Syntax.choices, default=Syntax.BASH)
    script_body = models.TextField(blank=True)
    script_parameters = models.CharField(max_length=1000, blank=True)
    packages = models.JSONField(default=list, blank=True, help_text='[{"PackageId": "app", "Version": "" (latest)}]')
    start_with_previous = models.BooleanField(default=False)
    condition = models.CharField(max_length=20, choices=Condition.choices, default=Condition.SUCCESS)
    condition_variable = models.CharField(
        max_length=200, blank=True, help_text="Condition=Variable: the step runs when this is true"
    )
    max_parallelism = models.PositiveIntegerField(default=10)
    instructions = models.TextField(blank=True, help_text="manual intervention: what the reviewer should check")
    responsible_teams = models.JSONField(
        default=list, blank=True, help_text='manual intervention: team ids, e.g. ["Teams-1"]'
    )
    script_source = models.CharField(
        max_length=20,
        default="Inline",
        choices=[("Inline", "Inline"), ("Package", "Package")],
        help_text="Octopus.Action.Script.ScriptSource",
    )
    script_file_name = models.CharField(
        max_length=300, blank=True, help_text="ScriptSource=Package: the script's path inside the first package"
    )
    is_disabled = models.BooleanField(default=False)

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "runbook", "name"], name="step_name_unique_in_process", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return self.name


class Variable(OctopusIdMixin, models.Model):
    """A project variable. Sensitive values are stored encrypted and never shown again."""

    ID_PREFIX = "Variables"

    class Type(models.TextChoices):
        TEXT = "String", "Text"
        SENSITIVE = "Sensitive", "Sensitive"
        WORKER_POOL = "WorkerPool", "Worker Pool"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="variables")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.TEXT)
    value = models.TextField(blank=True, help_text="Sensitive: Fernet ciphertext; Worker Pool: the pool's id")
    worker_pool = models.ForeignKey(
        WorkerPool, null=True, blank=True, on_delete=models.PROTECT, related_name="variables"
    )
    environments = models.ManyToManyField(
        Environment, blank=True, related_name="variables", help_text="empty: every environment"
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_sensitive(self) -> bool:
        return self.type == self.Type.SENSITIVE


class Package(OctopusIdMixin, models.Model):
    """A package in the built-in feed: a zip or tar.gz, versioned, addressed by SHA-256."""

    ID_PREFIX = "packages"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="packages")
    package_id = models.CharField(max_length=100)
    version = models.CharField(max_length=50)
    file_name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    published = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["package_id", "-published"]
        constraints = [
            models.UniqueConstraint(fields=["space", "package_id", "version"], name="package_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.package_id} {self.version}"
