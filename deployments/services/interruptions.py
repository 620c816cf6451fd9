"""Manual interventions as Octopus's API shows them (`Interruptions`), over the task's own pause: the orchestrator
sets `ServerTask.pending_interruption` and re-queues the task; an Interruption row records who took responsibility
and what they answered. Submitting goes through deploy.proceed_after_intervention, as the task page does."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from deployments.models import Interruption, ServerTask
from deployments.services import deploy
from portal.models import Event, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event

RESULTS = ("Proceed", "Abort")


def sync_interruptions(tasks) -> None:
    """Make the Interruption row of every task that waits on one and has none yet; close rows whose task moved on."""
    waiting = (ServerTask.objects.filter(pk__in=[t.pk for t in tasks]).exclude(pending_interruption="")
               .exclude(state__in=ServerTask.FINAL_STATES))
    have = set(Interruption.objects.filter(task__in=waiting, is_pending=True).values_list("task_id", flat=True))
    for task in waiting:
        if task.pk not in have:
            try:
                with transaction.atomic():
                    Interruption.objects.create(task=task, title=f"Manual intervention: {task.pending_interruption}"[:500],
                                                instructions=task.pending_interruption)
            except IntegrityError:  # another request made it first
                pass
    Interruption.objects.filter(is_pending=True).filter(
        Q(task__pending_interruption="") | Q(task__state__in=ServerTask.FINAL_STATES)).update(is_pending=False)


def pending_interruption_of(task: ServerTask) -> Interruption | None:
    sync_interruptions([task])
    return Interruption.objects.filter(task=task, is_pending=True).select_related("task__space", "responsible_user").first()


@transaction.atomic
def take_responsibility(*, actor: User, interruption: Interruption) -> Interruption:
    require_permission(actor, Permission.DEPLOYMENT_CREATE, space=interruption.task.space)
    interruption = Interruption.objects.select_for_update().get(pk=interruption.pk)
    if not interruption.is_pending:
        raise ValidationError({"Interruption": ["This intervention has already been answered."]})
    if interruption.responsible_user_id != actor.pk:
        interruption.responsible_user = actor
        interruption.save(update_fields=["responsible_user"])
        record_event(actor=actor, category=Event.Category.MODIFIED, document=interruption, space=interruption.task.space,
                     message=f"{actor} took responsibility for the manual intervention of {interruption.task.octopus_id}")
    return interruption


@transaction.atomic
def submit_interruption(*, actor: User, interruption: Interruption, result: str, notes: str = "") -> Interruption:
    """Proceed or Abort, by the user who took responsibility (taking it now if nobody has)."""
    require_permission(actor, Permission.DEPLOYMENT_CREATE, space=interruption.task.space)
    interruption = Interruption.objects.select_for_update().get(pk=interruption.pk)
    if result not in RESULTS:
        raise ValidationError({"Result": [f"Answer {' or '.join(RESULTS)}."]})
    if not interruption.is_pending:
        raise ValidationError({"Interruption": ["This intervention has already been answered."]})
    if interruption.responsible_user_id not in (None, actor.pk):
        raise PermissionDenied(f"{interruption.responsible_user} has taken responsibility for this intervention; take it "
                               "yourself first.")
    deploy.proceed_after_intervention(actor=actor, task=interruption.task, proceed=result == "Proceed", note=notes or "")
    interruption.is_pending, interruption.result, interruption.notes = False, result, (notes or "")[:1000]
    interruption.responsible_user = actor
    interruption.save(update_fields=["is_pending", "result", "notes", "responsible_user"])
    return interruption
