"""Machine policies."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from infrastructure.models import MachinePolicy
from infrastructure.services.liveness import reschedule_health_checks
from portal.models import Event, Space, User
from portal.services.audit import differences, record_event, snapshot

DEFAULT_POLICY_NAME = "Default Machine Policy"
FIELDS = [
    "name",
    "description",
    "health_check_interval",
    "health_check_type",
    "bash_health_check_script",
    "connect_timeout",
    "retry_count",
    "retry_wait",
    "polling_request_queue_timeout",
    "connectivity_behavior",
    "delete_behavior",
    "delete_after",
]
_LIMITS = {  # field: (minimum, maximum) in its unit
    "health_check_interval": (60, 31 * 24 * 3600),
    "connect_timeout": (1, 3600),
    "retry_count": (0, 100),
    "retry_wait": (0, 600),
    "polling_request_queue_timeout": (5, 24 * 3600),
    "delete_after": (60, 365 * 24 * 3600),
}
_CHOICES = {
    "health_check_type": MachinePolicy.HealthCheckType.values,
    "connectivity_behavior": MachinePolicy.ConnectivityBehavior.values,
    "delete_behavior": MachinePolicy.DeleteBehavior.values,
}


def ensure_default_machine_policy(space: Space) -> MachinePolicy:
    policy = MachinePolicy.objects.filter(space=space, is_default=True).first()
    if policy is None:
        policy, _ = MachinePolicy.objects.get_or_create(
            space=space, name=DEFAULT_POLICY_NAME, defaults={"is_default": True}
        )
    return policy


def _validate(space: Space, values: dict, exclude_pk: int | None = None) -> dict:
    errors: dict[str, str] = {}
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown machine policy fields: {sorted(unknown)}")
    if "name" in values:
        values["name"] = (values["name"] or "").strip()
        if not values["name"]:
            errors["name"] = "A machine policy needs a name."
        elif MachinePolicy.objects.filter(space=space, name__iexact=values["name"]).exclude(pk=exclude_pk).exists():
            errors["name"] = f"A machine policy named {values['name']!r} already exists."
    for field, (low, high) in _LIMITS.items():
        if field in values:
            value = values[field]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                errors[field] = f"Must be a whole number from {low} to {high}."
    for field, allowed in _CHOICES.items():
        if field in values and values[field] not in allowed:
            errors[field] = f"{values[field]!r} is not one of {', '.join(allowed)}."
    if errors:
        raise ValidationError(errors)
    return values


@transaction.atomic
def create_machine_policy(*, actor: User, space: Space, **values) -> MachinePolicy:
    values = _validate(space, values)
    if "name" not in values:
        raise ValidationError({"name": "A machine policy needs a name."})
    try:
        policy = MachinePolicy.objects.create(space=space, **values)
    except IntegrityError:
        raise ValidationError({"name": "A machine policy with that name already exists."}) from None
    record_event(
        actor=actor, category=Event.Category.CREATED, document=policy, changes=differences({}, snapshot(policy, FIELDS))
    )
    return policy


@transaction.atomic
def update_machine_policy(*, actor: User, policy: MachinePolicy, **values) -> MachinePolicy:
    policy = MachinePolicy.objects.select_for_update().get(pk=policy.pk)
    values = _validate(policy.space, values, exclude_pk=policy.pk)
    before = snapshot(policy, FIELDS)
    for field, value in values.items():
        setattr(policy, field, value)
    policy.save()
    changes = differences(before, snapshot(policy, FIELDS))
    if changes:
        record_event(actor=actor, category=Event.Category.MODIFIED, document=policy, changes=changes)
        reschedule_health_checks(policy=policy, changed=set(changes))  # applies at once, not at the next check
    return policy


@transaction.atomic
def delete_machine_policy(*, actor: User, policy: MachinePolicy) -> None:
    if policy.is_default:
        raise ValidationError("The default machine policy cannot be deleted.")
    users = list(policy.workers.values_list("name", flat=True)[:20])
    if users:
        raise ValidationError(f"{policy.name} is used by these workers: {', '.join(users)}.")
    record_event(actor=actor, category=Event.Category.DELETED, document=policy)
    policy.delete()
