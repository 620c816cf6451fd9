"""Deployment targets: a kind, roles, environments, and for a Tentacle its address and thumbprint."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from deployments.models import DeploymentTarget
from deployments.services.catalog.editing import ROLE_RE, record_saved, unique_name
from infrastructure.services import validation
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event, snapshot

TARGET_FIELDS = ["name", "kind", "uri", "thumbprint", "roles", "environments", "is_disabled"]


def _target_values(
    space: Space,
    target: DeploymentTarget | None,
    name: str,
    kind: str,
    roles: list[str],
    environments,
    uri: str,
    thumbprint: str,
) -> dict:
    errors: dict[str, list[str]] = {}
    try:
        name = unique_name(
            DeploymentTarget.objects.filter(space=space),
            name,
            "deployment target",
            exclude_pk=target.pk if target else None,
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    roles = [r.strip() for r in roles if r and r.strip()]
    environments = list(environments)
    if kind not in DeploymentTarget.Kind.values:
        errors["kind"] = [f"Choose one of {', '.join(DeploymentTarget.Kind.labels)}."]
    if not roles:
        errors["roles"] = ["Give the target at least one role: steps find targets by role."]
    elif bad := [r for r in roles if not ROLE_RE.fullmatch(r)]:
        errors["roles"] = [f"A role is letters, digits, dots, dashes or underscores: {', '.join(bad)}."]
    if not environments:
        errors["environments"] = ["Choose at least one environment."]
    elif any(e.space_id != space.pk for e in environments):
        errors["environments"] = [f"Choose environments of {space.name}."]
    uri, thumbprint = (uri or "").strip(), validation.normalise_thumbprint(thumbprint)
    if kind == DeploymentTarget.Kind.CLOUD_REGION:
        uri, thumbprint = "", ""
    elif kind in DeploymentTarget.Kind.values:
        check = (
            validation.listening_uri_error if kind == DeploymentTarget.Kind.LISTENING else validation.polling_uri_error
        )
        if error := check(uri):
            errors["uri"] = [error]
        if error := validation.thumbprint_error(thumbprint):
            errors["thumbprint"] = [error]
    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "kind": kind,
        "roles": list(dict.fromkeys(roles)),
        "environments": environments,
        "uri": uri,
        "thumbprint": thumbprint,
    }


@transaction.atomic
def create_deployment_target(
    *,
    actor: User,
    space: Space,
    name: str,
    kind: str,
    roles: list[str],
    environments,
    uri: str = "",
    thumbprint: str = "",
    is_disabled: bool = False,
) -> DeploymentTarget:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    values = _target_values(space, None, name, kind, roles, environments, uri, thumbprint)
    environments = values.pop("environments")
    target = DeploymentTarget.objects.create(space=space, is_disabled=is_disabled, **values)
    target.environments.set(environments)
    record_saved(actor, target, {}, TARGET_FIELDS)
    return target


@transaction.atomic
def update_deployment_target(
    *,
    actor: User,
    target: DeploymentTarget,
    name: str,
    kind: str,
    roles: list[str],
    environments,
    uri: str = "",
    thumbprint: str = "",
    is_disabled: bool = False,
) -> DeploymentTarget:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=target.space)
    target = DeploymentTarget.objects.select_for_update().get(pk=target.pk)
    before = snapshot(target, TARGET_FIELDS)
    values = _target_values(target.space, target, name, kind, roles, environments, uri, thumbprint)
    environments = values.pop("environments")
    for field, value in values.items():
        setattr(target, field, value)
    target.is_disabled = is_disabled
    target.save()
    target.environments.set(environments)
    record_saved(actor, target, before, TARGET_FIELDS)
    return target


@transaction.atomic
def delete_deployment_target(*, actor: User, target: DeploymentTarget) -> None:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=target.space)
    record_event(actor=actor, category=Event.Category.DELETED, document=target)
    target.delete()
