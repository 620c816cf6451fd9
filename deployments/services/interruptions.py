"""Interruptions, as Octopus has them: manual interventions (Proceed / Abort) and guided failures (Retry /
Ignore / Fail). While one waits, its task stays Executing with HasPendingInterruptions and no server node;
an answer puts the task back in the queue, and the orchestrator resumes it where it paused (workers are
selected again). Each act (taking responsibility, answering) is written to the task log and the audit trail.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from deployments.models import Environment, Interruption, WorkerLease
from portal.models import Event, Team, User
from portal.permissions import Permission
from portal.services.access import has_permission, require_permission, spaces_visible_to
from portal.services.audit import record_event
from servertasks.models import ActivityNode, ServerTask, TaskLogLine
from servertasks.services import logstream
from servertasks.services.tasklog import TaskLog

State = ServerTask.State


def pending_interruption_of(task: ServerTask) -> Interruption | None:
    return task.interruptions.filter(is_pending=True).order_by("-id").first()


def is_responsible_team_member(*, interruption: Interruption, user: User) -> bool:
    """No responsible teams: anyone who may deploy. Otherwise a member of one of them (or of an Everyone team)."""
    if not interruption.responsible_team_ids:
        return True
    ids = [Team.pk_from_octopus_id(i) for i in interruption.responsible_team_ids]
    teams = Team.objects.filter(pk__in=[i for i in ids if i])
    return teams.filter(includes_everyone=True).exists() or teams.filter(members=user).exists()


def _require_may_answer(interruption: Interruption, user: User) -> None:
    require_permission(user, Permission.DEPLOYMENT_CREATE, space=interruption.space)
    if not is_responsible_team_member(interruption=interruption, user=user):
        raise PermissionDenied("Only a member of the responsible teams may act on this interruption.")


def _log(task: ServerTask, text: str, node: ActivityNode | None) -> None:
    log = TaskLog(task)
    log.write(text, TaskLogLine.Category.HIGHLIGHT, node)
    log.flush()


@transaction.atomic
def take_interruption_responsibility(*, interruption: Interruption, user: User) -> Interruption:
    """ "Assign to me": the user becomes responsible; only they may then answer."""
    interruption = Interruption.objects.select_for_update().get(pk=interruption.pk)
    _require_may_answer(interruption, user)
    if not interruption.is_pending:
        raise ValidationError({"Interruption": ["This interruption has already been answered."]})
    if interruption.responsible_user_id != user.pk:
        interruption.responsible_user = user
        interruption.save(update_fields=["responsible_user"])
        _log(interruption.task, f"{user} took responsibility for: {interruption.title}", interruption.node)
        record_event(
            actor=user,
            category=Event.Category.MODIFIED,
            document=interruption.task,
            message=f"{user} took responsibility for the interruption {interruption.octopus_id} "
            f"of {interruption.task.octopus_id}",
        )
    return interruption


@transaction.atomic
def submit_interruption(*, interruption: Interruption, user: User, action: str, note: str = "") -> Interruption:
    """Answer an interruption (Proceed/Abort, or Retry/Ignore/Fail) with an optional note; the task resumes."""
    interruption = Interruption.objects.select_for_update().select_related("task", "space").get(pk=interruption.pk)
    _require_may_answer(interruption, user)
    note = (note or "").strip()
    if len(note) > 1000:
        raise ValidationError({"Notes": ["At most 1,000 characters."]})
    if action not in interruption.results:
        raise ValidationError({"Result": [f"Choose one of {', '.join(interruption.results)}."]})
    if not interruption.is_pending:
        raise ValidationError({"Interruption": ["This interruption has already been answered."]})
    if interruption.responsible_user_id not in (None, user.pk):
        raise ValidationError(
            {
                "Interruption": [
                    f"{interruption.responsible_user} is responsible for this interruption: only they may answer it."
                ]
            }
        )
    task = interruption.task
    resume = dict(task.arguments.get("Resume") or {})
    resume.update(Result=action, ApprovedBy=str(user), Note=note)
    # Compare-and-set: only a task still waiting at this interruption is re-queued.
    moved = (
        ServerTask.objects.filter(pk=task.pk, state=State.EXECUTING)
        .exclude(pending_interruption="")
        .update(state=State.QUEUED, pending_interruption="", arguments={**task.arguments, "Resume": resume})
    )
    if not moved:
        raise ValidationError({"Interruption": ["This task is no longer waiting for an answer."]})
    interruption.responsible_user = interruption.responsible_user or user
    interruption.is_pending, interruption.result, interruption.note = False, action, note
    interruption.submitted_by, interruption.submitted = user, timezone.now()
    interruption.save(update_fields=["responsible_user", "is_pending", "result", "note", "submitted_by", "submitted"])
    task.refresh_from_db()
    _log(task, f"{user} chose to {action.lower()}. {note}".strip(), interruption.node)
    record_event(
        actor=user,
        category=Event.Category.MODIFIED,
        document=task,
        message=f"{user} chose to {action.lower()} at {interruption.title!r} of {task.octopus_id}"
        + (f": {note}" if note else ""),
    )
    from deployments.tasks import run_server_task_task  # the Celery tasks import the services

    transaction.on_commit(lambda: logstream.publish_state(task))
    transaction.on_commit(lambda: run_server_task_task.delay(task.pk))
    return interruption


def close_interruptions_of_canceled_task(*, task: ServerTask) -> None:
    """A task canceled while it waited: its interruptions close and its open nodes end Canceled."""
    task.interruptions.filter(is_pending=True).update(is_pending=False)
    ActivityNode.objects.filter(
        task=task, status__in=[ActivityNode.Status.RUNNING, ActivityNode.Status.PENDING]
    ).update(status=ActivityNode.Status.CANCELED, ended=timezone.now())
    WorkerLease.objects.filter(task=task).delete()


def interruptions_visible_to(user: User):
    spaces = [s for s in spaces_visible_to(user) if has_permission(user, Permission.TASK_VIEW, space=s)]
    return Interruption.objects.filter(space__in=spaces).select_related("task", "responsible_user", "submitted_by")


@transaction.atomic
def set_environment_guided_failure(*, actor: User, environment, enabled: bool):
    """UseGuidedFailure on an environment: a failed step in a deployment there waits for Retry, Ignore or Fail."""
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=environment.space)
    if (
        Environment.objects.filter(pk=environment.pk)
        .exclude(use_guided_failure=enabled)
        .update(use_guided_failure=enabled)
    ):
        environment.use_guided_failure = enabled
        record_event(
            actor=actor,
            category=Event.Category.MODIFIED,
            document=environment,
            message=f"Guided failure was turned {'on' if enabled else 'off'} for {environment.name}",
        )
    return environment


def submit_interruption_form(*, interruption: Interruption, user: User, values: dict) -> Interruption:
    """Octopus's `POST /interruptions/{id}/submit` body: `{"Result": "Proceed"|"Abort", "Notes": …}` for a manual
    intervention, `{"Guidance": "Retry"|"Ignore"|"Fail", "Notes": …}` for a guided failure."""
    if not isinstance(values, dict):
        raise ValidationError({"Values": ["Send the form's values as an object."]})
    field = "Result" if interruption.type == Interruption.Type.MANUAL else "Guidance"
    action, note = values.get(field), values.get("Notes") or ""
    if not isinstance(action, str) or action not in interruption.results:
        raise ValidationError({field: [f"Choose one of {', '.join(interruption.results)}."]})
    if not isinstance(note, str):
        raise ValidationError({"Notes": ["Notes are text."]})
    return submit_interruption(interruption=interruption, user=user, action=action, note=note)


def can_take_responsibility(*, interruption: Interruption, user: User) -> bool:
    """Octopus's CanTakeResponsibility: pending, and the user is one who may answer it."""
    return (
        interruption.is_pending
        and has_permission(user, Permission.DEPLOYMENT_CREATE, space=interruption.space)
        and is_responsible_team_member(interruption=interruption, user=user)
    )
