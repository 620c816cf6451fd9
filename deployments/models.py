"""Environments, targets, projects and their processes, variables, releases, deployments, runbooks,
the built-in package feed, and what a deployment's server task holds: leases, artifacts, interruptions and
running scripts (the tasks themselves and their logs are in servertasks.models)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from infrastructure.models import Worker, WorkerPool
from portal.models import OctopusIdMixin, Space
from servertasks.models import ActivityNode, ServerTask


class Environment(OctopusIdMixin, models.Model):
    ID_PREFIX = "Environments"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    sort_order = models.IntegerField(default=0)
    use_guided_failure = models.BooleanField(
        default=False, help_text="a failed step pauses the deployment for Retry, Ignore or Fail"
    )

    class Meta:
        ordering = ["sort_order", "name"]
        constraints = [models.UniqueConstraint(fields=["space", "name"], name="environment_name_unique_in_space")]

    def __str__(self) -> str:
        return self.name


class DeploymentTarget(OctopusIdMixin, models.Model):
    """Just enough of a target to carry roles and environments: steps run on a worker on its behalf."""

    ID_PREFIX = "Machines"

    class Kind(models.TextChoices):
        CLOUD_REGION = "CloudRegion", "Cloud region (agentless)"
        LISTENING = "TentaclePassive", "Listening tentacle"
        POLLING = "TentacleActive", "Polling tentacle"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="deployment_targets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=30, choices=Kind.choices, default=Kind.CLOUD_REGION)
    uri = models.CharField(max_length=300, blank=True)
    thumbprint = models.CharField(max_length=40, blank=True)
    roles = models.JSONField(default=list, blank=True)
    environments = models.ManyToManyField(Environment, related_name="deployment_targets")
    is_disabled = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["space", "name"], name="target_name_unique_in_space")]

    def __str__(self) -> str:
        return self.name


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


class Lifecycle(OctopusIdMixin, models.Model):
    """Phases a release is promoted through. With no phases, every environment is a phase of its own, in order
    (Octopus's rule, and what the `Default Lifecycle` relies on)."""

    ID_PREFIX = "Lifecycles"
    DEFAULT_NAME = "Default Lifecycle"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="lifecycles")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["space", "name"], name="lifecycle_name_unique_in_space")]

    def __str__(self) -> str:
        return self.name


class Phase(OctopusIdMixin, models.Model):
    ID_PREFIX = "Phases"

    lifecycle = models.ForeignKey(Lifecycle, on_delete=models.CASCADE, related_name="phases")
    name = models.CharField(max_length=200)
    sort_order = models.IntegerField(default=0)
    automatic_environments = models.ManyToManyField(Environment, blank=True, related_name="+")
    optional_environments = models.ManyToManyField(Environment, blank=True, related_name="+")
    minimum_environments_before_promotion = models.PositiveIntegerField(default=0, help_text="0: all of them")
    is_optional_phase = models.BooleanField(default=False)

    class Meta:
        ordering = ["lifecycle", "sort_order", "id"]

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


class Release(OctopusIdMixin, models.Model):
    """A snapshot of a project's process and variables (sensitive values stay encrypted) at a version."""

    ID_PREFIX = "Releases"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=50)
    release_notes = models.TextField(blank=True)
    process_snapshot = models.JSONField(default=list)
    variables_snapshot = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="releases")

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["project", "version"], name="release_version_unique")]

    def __str__(self) -> str:
        return self.version

    @property
    def space_id(self) -> int:
        return self.project.space_id


class Deployment(OctopusIdMixin, models.Model):
    ID_PREFIX = "Deployments"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    task = models.OneToOneField(ServerTask, on_delete=models.CASCADE, related_name="deployment")
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    use_guided_failure = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.release.project.name} {self.release.version} to {self.environment.name}"

    @property
    def space_id(self) -> int:
        return self.environment.space_id


class RunbookRun(OctopusIdMixin, models.Model):
    ID_PREFIX = "RunbookRuns"

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="runs")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="runbook_runs")
    task = models.OneToOneField(ServerTask, on_delete=models.CASCADE, related_name="runbook_run")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]

    @property
    def space_id(self) -> int:
        return self.environment.space_id


class RunbookSnapshot(OctopusIdMixin, models.Model):
    """A runbook's process and the project's variables frozen under a name; a run uses the published one."""

    ID_PREFIX = "RunbookSnapshots"

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=100)
    notes = models.TextField(blank=True)
    process_snapshot = models.JSONField(default=list)
    variables_snapshot = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["runbook", "name"], name="runbook_snapshot_name_unique")]

    def __str__(self) -> str:
        return self.name


class WorkerLease(models.Model):
    """Which task holds which worker, recorded against the task and deleted however the task ends."""

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="leases")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="leases")
    step_name = models.CharField(max_length=200)
    rule = models.CharField(max_length=300, help_text="why this worker: the selection rule, in words")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]


class Artifact(OctopusIdMixin, models.Model):
    """A file a script created with new_octopusartifact, collected into the task."""

    ID_PREFIX = "Artifacts"

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="artifacts")
    name = models.CharField(max_length=200)
    size = models.PositiveBigIntegerField()
    content = models.BinaryField()
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class ServerConfiguration(models.Model):
    """Configuration ➜ Features: one row."""

    is_builtin_worker_enabled = models.BooleanField(default=True)

    @classmethod
    def current(cls) -> ServerConfiguration:
        return cls.objects.get_or_create(pk=1)[0]


class Interruption(OctopusIdMixin, models.Model):
    """A manual intervention or a guided failure waiting for (or answered by) someone: Octopus's
    InterruptionResource."""

    ID_PREFIX = "Interruptions"

    class Type(models.TextChoices):
        MANUAL = "ManualIntervention"
        GUIDED_FAILURE = "GuidedFailure"

    class Result(models.TextChoices):
        PROCEED = "Proceed"
        ABORT = "Abort"
        RETRY = "Retry"
        IGNORE = "Ignore"
        FAIL = "Fail"

    space = models.ForeignKey(Space, on_delete=models.CASCADE, related_name="interruptions")
    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="interruptions")
    type = models.CharField(max_length=30, choices=Type.choices)
    title = models.CharField(max_length=500)
    instructions = models.TextField(blank=True)
    step_index = models.PositiveIntegerField()
    node = models.ForeignKey(ActivityNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    responsible_team_ids = models.JSONField(default=list, blank=True)
    responsible_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    is_pending = models.BooleanField(default=True)
    result = models.CharField(max_length=10, choices=Result.choices, blank=True)
    note = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["task", "is_pending"])]

    def __str__(self) -> str:
        return self.title

    @property
    def results(self) -> list[str]:
        if self.type == self.Type.MANUAL:
            return [self.Result.PROCEED, self.Result.ABORT]
        return [self.Result.RETRY, self.Result.IGNORE, self.Result.FAIL]


class ServerNode(models.Model):
    """A server node of the cluster (Configuration ➜ Nodes), as Octopus lists its nodes. The row is
    written rarely (start, stop, about once a minute); liveness itself lives in Redis with a TTL."""

    name = models.CharField(max_length=100, unique=True)
    max_concurrent_tasks = models.PositiveIntegerField(default=5, help_text="the node's task cap")
    started = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    stopped = models.DateTimeField(null=True, blank=True, help_text="when it last stopped cleanly")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunningScript(models.Model):
    """A script a task started on a worker, recorded when it starts, so that whoever ends the task (its
    own node, or another one after the node died) can cancel it on the worker."""

    task = models.ForeignKey(ServerTask, on_delete=models.CASCADE, related_name="running_scripts")
    worker = models.ForeignKey(
        Worker,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="empty: the built-in worker",
    )
    ticket = models.CharField(max_length=100)
    started = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
