"""The server's own configuration and its nodes."""

from __future__ import annotations

from django.db import models


class ServerConfiguration(models.Model):
    """Configuration ➜ Features: one row."""

    is_builtin_worker_enabled = models.BooleanField(default=True)

    @classmethod
    def current(cls) -> ServerConfiguration:
        return cls.objects.get_or_create(pk=1)[0]


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
