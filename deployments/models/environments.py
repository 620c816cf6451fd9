"""Environments, deployment targets and the lifecycles whose phases promote a release through them."""

from __future__ import annotations

from django.db import models

from portal.models import OctopusIdMixin, Space


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
