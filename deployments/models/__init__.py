"""Environments, targets, projects and their processes, variables, releases, deployments, runbooks,
the built-in package feed, and what a deployment's server task holds: leases, artifacts, interruptions and
running scripts (the tasks themselves and their logs are in servertasks.models).

One module per concern; every model is importable from here, as it always was."""

from .environments import DeploymentTarget, Environment, Lifecycle, Phase
from .execution import Artifact, Interruption, RunningScript, WorkerLease
from .projects import Channel, Package, Project, ProjectGroup, Runbook, Step, Variable
from .releases import Deployment, Release, RunbookRun, RunbookSnapshot
from .server import ServerConfiguration, ServerNode

__all__ = [
    "Environment",
    "DeploymentTarget",
    "Lifecycle",
    "Phase",
    "ProjectGroup",
    "Project",
    "Channel",
    "Runbook",
    "Step",
    "Variable",
    "Package",
    "Release",
    "Deployment",
    "RunbookRun",
    "RunbookSnapshot",
    "WorkerLease",
    "Artifact",
    "Interruption",
    "RunningScript",
    "ServerConfiguration",
    "ServerNode",
]
