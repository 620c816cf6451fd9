"""Project groups, lifecycles with their phases, channels, and the promotion rule they enforce. Pages and the API
call these; each validates (a ValidationError names the field), saves in one transaction and records an event."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from deployments.models import Channel, Deployment, Environment, Lifecycle, Phase, Project, ProjectGroup, Release
from portal.models import Event, Space, User
from portal.permissions import Permission
from portal.services.access import require_permission
from portal.services.audit import record_event
from servertasks.models import ServerTask


def _name(queryset, name, what: str, *, exclude_pk: int | None = None) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError({"name": [f"Give the {what} a name."]})
    if len(name) > 200:
        raise ValidationError({"name": [f"A {what} name has at most 200 characters."]})
    if queryset.filter(name__iexact=name).exclude(pk=exclude_pk).exists():
        raise ValidationError({"name": [f"There is already a {what} named {name}."]})
    return name


# Defaults: made on first use, so a space created after the migration has them too --------------------


def default_project_group(space: Space) -> ProjectGroup:
    group = ProjectGroup.objects.filter(space=space, name=ProjectGroup.DEFAULT_NAME).first()
    if group is None:
        try:
            with transaction.atomic():
                group = ProjectGroup.objects.create(space=space, name=ProjectGroup.DEFAULT_NAME)
        except IntegrityError:
            group = ProjectGroup.objects.get(space=space, name=ProjectGroup.DEFAULT_NAME)
    return group


def default_lifecycle(space: Space) -> Lifecycle:
    lifecycle = Lifecycle.objects.filter(space=space, name=Lifecycle.DEFAULT_NAME).first()
    if lifecycle is None:
        try:
            with transaction.atomic():
                lifecycle = Lifecycle.objects.create(
                    space=space, name=Lifecycle.DEFAULT_NAME, description="Every environment, in order."
                )
        except IntegrityError:
            lifecycle = Lifecycle.objects.get(space=space, name=Lifecycle.DEFAULT_NAME)
    return lifecycle


def ensure_space_defaults(space: Space) -> None:
    default_project_group(space)
    default_lifecycle(space)


def default_channel(project: Project) -> Channel:
    channel = Channel.objects.filter(project=project, is_default=True).first()
    if channel is None:
        try:
            with transaction.atomic():
                channel = Channel.objects.create(project=project, name=Channel.DEFAULT_NAME, is_default=True)
        except IntegrityError:
            channel = Channel.objects.get(project=project, name=Channel.DEFAULT_NAME)
    return channel


def lifecycle_of_project(project: Project) -> Lifecycle:
    return project.lifecycle if project.lifecycle_id else default_lifecycle(project.space)


def lifecycle_of_release(release: Release) -> Lifecycle:
    if release.channel_id and release.channel.lifecycle_id:
        return release.channel.lifecycle
    return lifecycle_of_project(release.project)


def _lifecycle_id_of_release(release: Release) -> int | None:
    """lifecycle_of_release's id, without reading the lifecycle; None: the space's Default Lifecycle."""
    if release.channel_id and release.channel.lifecycle_id:
        return release.channel.lifecycle_id
    return release.project.lifecycle_id


# Phases and promotion ---------------------------------------------------------------------------------


@dataclass
class EffectivePhase:
    name: str
    environment_ids: list[int] = field(default_factory=list)
    automatic_ids: list[int] = field(default_factory=list)
    minimum: int = 0
    is_optional: bool = False


def effective_phases(lifecycle: Lifecycle) -> list[EffectivePhase]:
    """The lifecycle's phases; with none defined, one phase per environment of the space, in order."""
    return _phases_and_names(lifecycle.phases.all(), lifecycle.space_id)[0]


def _phases_and_names(phases, space_id: int) -> tuple[list[EffectivePhase], dict[int, str] | None]:
    """effective_phases of one lifecycle's `phases`, and the space's environment names when the phases are its
    environments (the same read)."""
    phases = phases.order_by("sort_order", "id")  # one lifecycle: no join to order by it
    phases = list(phases.prefetch_related("automatic_environments", "optional_environments"))
    if not phases:
        names = dict(Environment.objects.filter(space=space_id).values_list("pk", "name"))
        return [EffectivePhase(name=name, environment_ids=[pk]) for pk, name in names.items()], names
    found = []
    for phase in phases:
        automatic = [e.pk for e in phase.automatic_environments.all()]
        optional = [e.pk for e in phase.optional_environments.all()]
        found.append(
            EffectivePhase(
                name=phase.name,
                environment_ids=list(dict.fromkeys(automatic + optional)),
                automatic_ids=automatic,
                minimum=phase.minimum_environments_before_promotion,
                is_optional=phase.is_optional_phase,
            )
        )
    return found, None


def succeeded_environment_ids(release: Release) -> set[int]:
    return set(
        Deployment.objects.filter(release=release, task__state=ServerTask.State.SUCCESS).values_list(
            "environment_id", flat=True
        )
    )


class _PromotionContext:
    """What promotion_refusal reads, each read once and only when needed: the lifecycle's phases; where the
    release succeeded and the environments' names only once an environment lies past the first phase; the lifecycle
    itself only for its name in a refusal.

    Hot path (every deployment): the phases are read by the lifecycle's id, the Default Lifecycle's by its name. One
    that does not exist yet has no phases, as the one default_lifecycle() would create."""

    def __init__(self, release: Release):
        self.release = release
        self.space_id = release.project.space_id
        lifecycle_id = _lifecycle_id_of_release(release)
        if lifecycle_id is None:
            phases = Phase.objects.filter(lifecycle__space=self.space_id, lifecycle__name=Lifecycle.DEFAULT_NAME)
        else:
            phases = Phase.objects.filter(lifecycle=lifecycle_id)
        self.phases, self._names = _phases_and_names(phases, self.space_id)

    @cached_property
    def lifecycle(self) -> Lifecycle:
        return lifecycle_of_release(self.release)

    @cached_property
    def succeeded(self) -> set[int]:
        return succeeded_environment_ids(self.release)

    @cached_property
    def names(self) -> dict[int, str]:
        if self._names is not None:
            return self._names
        return dict(Environment.objects.filter(space=self.space_id).values_list("pk", "name"))


def promotion_refusal(
    release: Release, environment: Environment, *, _context: _PromotionContext | None = None
) -> str | None:
    """None if the release may be deployed to the environment now, else the sentence saying why not.

    1. Walk the phases in order; each phase's environments are open once every phase before it is complete.
    2. A phase is complete when it is optional, or when its minimum number of environments (0: all of them) has a
       successful deployment of this release.
    """
    context = _context or _PromotionContext(release)
    phases = context.phases
    if not any(environment.pk in phase.environment_ids for phase in phases):
        return f"{environment.name} is not in any phase of the lifecycle {context.lifecycle.name}."
    for phase in phases:
        if environment.pk in phase.environment_ids:
            return None
        needed = phase.minimum or len(phase.environment_ids)
        done = len(context.succeeded & set(phase.environment_ids))
        if not phase.is_optional and done < needed:
            target = next(p for p in phases if environment.pk in p.environment_ids)
            where = ", ".join(context.names.get(pk, "?") for pk in phase.environment_ids)
            return (
                f"Release {release.version} cannot be deployed to {environment.name} "
                f"(phase {target.name} of the lifecycle {context.lifecycle.name}) "
                f"until the phase {phase.name} is complete: it needs a successful deployment to "
                f"{needed if phase.minimum else 'each'} of {where}, and has {done}."
            )
    return None


def require_promotable(release: Release, environment: Environment) -> None:
    if refusal := promotion_refusal(release, environment):
        raise ValidationError({"environment_id": [refusal]})


def deploy_automatically(*, actor: User | None, release: Release) -> list[Deployment]:
    """Queue the release to every automatic environment of a phase now open to it that it has not been deployed to:
    called when the release is created and when one of its deployments succeeds. Done as `actor` (who created the
    release, or started the deployment that succeeded), and only what that actor may do."""
    from deployments.services import deploy  # deploy imports this module

    if actor is None:
        return []
    tried = set(Deployment.objects.filter(release=release).values_list("environment_id", flat=True))
    queued = []
    environments = {e.pk: e for e in Environment.objects.filter(space=release.project.space_id)}
    for phase in effective_phases(lifecycle_of_release(release)):
        for pk in phase.automatic_ids:
            environment = environments.get(pk)
            if environment is None or pk in tried or promotion_refusal(release, environment) is not None:
                continue
            try:
                queued.append(deploy.deploy_release(actor=actor, release=release, environment=environment))
            except (ValidationError, PermissionDenied):
                continue  # the user deploys it by hand, where the refusal is shown
            tried.add(pk)
    return queued


def promote_after_task(task_id: int) -> list[Deployment]:
    """After a deployment task ends: if it succeeded, the automatic environments the success opened."""
    deployment = (
        Deployment.objects.filter(task_id=task_id, task__state=ServerTask.State.SUCCESS)
        .select_related("release__project__space", "created_by")
        .first()
    )
    if deployment is None:
        return []
    return deploy_automatically(actor=deployment.created_by, release=deployment.release)


def lifecycle_progress(release: Release) -> tuple[Lifecycle, list[dict]]:
    """The release's lifecycle and, phase by phase, each environment with where the release stands there:
    `Deployed` (a successful deployment), `Open` (may be deployed now) or `Locked` (with the reason)."""
    context = _PromotionContext(release)
    lifecycle, effective, succeeded = context.lifecycle, context.phases, context.succeeded
    environments = {e.pk: e for e in Environment.objects.filter(space=lifecycle.space_id)}
    phases = []
    for phase in effective:
        rows = []
        for pk in phase.environment_ids:
            environment = environments.get(pk)
            if environment is None:
                continue
            refusal = promotion_refusal(release, environment, _context=context)
            rows.append(
                {
                    "environment": environment,
                    "automatic": pk in phase.automatic_ids,
                    "reason": refusal or "",
                    "state": "Deployed" if pk in succeeded else "Locked" if refusal else "Open",
                }
            )
        phases.append(
            {"name": phase.name, "optional": phase.is_optional, "minimum": phase.minimum, "environments": rows}
        )
    return lifecycle, phases


def environments_open_to(release: Release) -> list[Environment]:
    """The environments the release may be deployed to now, in order: what the deploy page offers."""
    context = _PromotionContext(release)
    return [
        e
        for e in Environment.objects.filter(space=release.project.space_id)
        if promotion_refusal(release, e, _context=context) is None
    ]


# Project groups ----------------------------------------------------------------------------------------


@transaction.atomic
def save_project_group(
    *, actor: User, space: Space, name: str, description: str = "", group: ProjectGroup | None = None
) -> ProjectGroup:
    require_permission(actor, Permission.PROJECT_EDIT, space=space)
    if group is not None:
        group = ProjectGroup.objects.select_for_update().get(pk=group.pk, space=space)
    name = _name(
        ProjectGroup.objects.filter(space=space), name, "project group", exclude_pk=group.pk if group else None
    )
    created = group is None
    group = group or ProjectGroup(space=space)
    group.name, group.description = name, description or ""
    group.save()
    record_event(actor=actor, category=Event.Category.CREATED if created else Event.Category.MODIFIED, document=group)
    return group


@transaction.atomic
def delete_project_group(*, actor: User, group: ProjectGroup) -> None:
    require_permission(actor, Permission.PROJECT_EDIT, space=group.space)
    if names := list(group.projects.values_list("name", flat=True)[:20]):
        raise ValidationError(f"{group.name} still holds projects: {', '.join(names)}. Move or delete them first.")
    record_event(actor=actor, category=Event.Category.DELETED, document=group)
    group.delete()


# Lifecycles ---------------------------------------------------------------------------------------------


@dataclass
class PhaseSpec:
    name: str
    automatic_environments: list[Environment] = field(default_factory=list)
    optional_environments: list[Environment] = field(default_factory=list)
    minimum_environments_before_promotion: int = 0
    is_optional_phase: bool = False


def _phase_errors(space: Space, phases: list[PhaseSpec]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    seen: dict[int, str] = {}
    names: set[str] = set()
    for i, phase in enumerate(phases):
        where = f"phases[{i}]"
        name = (phase.name or "").strip()
        if not name:
            errors[f"{where}.name"] = ["Give the phase a name."]
        elif len(name) > 200:
            errors[f"{where}.name"] = ["A phase name has at most 200 characters."]
        elif name.lower() in names:
            errors[f"{where}.name"] = [f"Two phases are named {name}."]
        names.add(name.lower())
        environments = phase.automatic_environments + phase.optional_environments
        if any(e.space_id != space.pk for e in environments):
            errors[f"{where}.environments"] = [f"Choose environments of {space.name}."]
        for environment in environments:
            if environment.pk in seen:
                errors[f"{where}.environments"] = [
                    f"{environment.name} is already in the phase {seen[environment.pk]}: "
                    "an environment belongs to one phase."
                ]
            seen[environment.pk] = name
        if phase.minimum_environments_before_promotion > len(environments):
            errors[f"{where}.minimum_environments_before_promotion"] = [
                f"The phase has {len(environments)} environments; "
                f"it cannot need {phase.minimum_environments_before_promotion}."
            ]
    return errors


def is_implicit(space: Space, phases: list[PhaseSpec]) -> bool:
    """True when `phases` are exactly the ones a lifecycle without phases applies: one per environment, in order."""
    environments = list(Environment.objects.filter(space=space))
    return len(phases) == len(environments) and all(
        spec.name.strip() == e.name
        and not spec.automatic_environments
        and [x.pk for x in spec.optional_environments] == [e.pk]
        and not spec.is_optional_phase
        and spec.minimum_environments_before_promotion == 0
        for spec, e in zip(phases, environments, strict=True)
    )


@transaction.atomic
def save_lifecycle(
    *,
    actor: User,
    space: Space,
    name: str,
    description: str = "",
    phases: list[PhaseSpec],
    lifecycle: Lifecycle | None = None,
) -> Lifecycle:
    """Create or replace a lifecycle with its phases, in order."""
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=space)
    if lifecycle is not None:
        lifecycle = Lifecycle.objects.select_for_update().get(pk=lifecycle.pk, space=space)
    errors = {}
    try:
        name = _name(
            Lifecycle.objects.filter(space=space), name, "lifecycle", exclude_pk=lifecycle.pk if lifecycle else None
        )
    except ValidationError as error:
        errors.update(error.message_dict)
    errors.update(_phase_errors(space, phases))
    if errors:
        raise ValidationError(errors)
    created = lifecycle is None
    lifecycle = lifecycle or Lifecycle(space=space)
    lifecycle.name, lifecycle.description = name, description or ""
    lifecycle.save()
    lifecycle.phases.all().delete()
    for order, spec in enumerate(phases):
        phase = Phase.objects.create(
            lifecycle=lifecycle,
            name=spec.name.strip(),
            sort_order=order,
            minimum_environments_before_promotion=spec.minimum_environments_before_promotion,
            is_optional_phase=spec.is_optional_phase,
        )
        phase.automatic_environments.set(spec.automatic_environments)
        phase.optional_environments.set(spec.optional_environments)
    record_event(
        actor=actor,
        category=Event.Category.CREATED if created else Event.Category.MODIFIED,
        document=lifecycle,
        message=f"Lifecycle {name} was {'created' if created else 'changed'}: "
        + (" → ".join(p.name for p in phases) or "every environment in order"),
    )
    return lifecycle


@transaction.atomic
def delete_lifecycle(*, actor: User, lifecycle: Lifecycle) -> None:
    require_permission(actor, Permission.ENVIRONMENT_EDIT, space=lifecycle.space)
    if lifecycle.name == Lifecycle.DEFAULT_NAME:
        raise ValidationError(
            "The Default Lifecycle is used by every project without one of its own; it cannot be deleted."
        )
    users = [f"project {p}" for p in lifecycle.projects.all()[:20]]
    users += [f"channel {c.name} of {c.project.name}" for c in lifecycle.channels.select_related("project")[:20]]
    if users:
        raise ValidationError(f"{lifecycle.name} is in use by: " + "; ".join(users) + ".")
    record_event(actor=actor, category=Event.Category.DELETED, document=lifecycle)
    lifecycle.delete()


# Channels ------------------------------------------------------------------------------------------------


@transaction.atomic
def save_channel(
    *,
    actor: User,
    project: Project,
    name: str,
    description: str = "",
    lifecycle: Lifecycle | None = None,
    is_default: bool = False,
    channel: Channel | None = None,
) -> Channel:
    require_permission(actor, Permission.PROJECT_EDIT, space=project.space)
    if channel is not None:
        channel = Channel.objects.select_for_update().get(pk=channel.pk, project=project)
    errors = {}
    try:
        name = _name(project.channels.all(), name, "channel", exclude_pk=channel.pk if channel else None)
    except ValidationError as error:
        errors.update(error.message_dict)
    if lifecycle is not None and lifecycle.space_id != project.space_id:
        errors["lifecycle"] = [f"{lifecycle.name} is not a lifecycle of {project.space.name}."]
    if channel is not None and channel.is_default and not is_default:
        errors["is_default"] = ["Make another channel the default instead; a project always has one."]
    if errors:
        raise ValidationError(errors)
    created = channel is None
    channel = channel or Channel(project=project)
    if is_default and not channel.is_default:
        project.channels.filter(is_default=True).update(is_default=False)
    channel.name, channel.description, channel.lifecycle, channel.is_default = (
        name,
        description or "",
        lifecycle,
        is_default,
    )
    channel.save()
    record_event(
        actor=actor,
        category=Event.Category.CREATED if created else Event.Category.MODIFIED,
        document=channel,
        space=project.space,
        message=f"Channel {name} of {project.name} was {'created' if created else 'changed'}",
    )
    return channel


@transaction.atomic
def delete_channel(*, actor: User, channel: Channel) -> None:
    require_permission(actor, Permission.PROJECT_EDIT, space=channel.project.space)
    if channel.is_default:
        raise ValidationError("The default channel cannot be deleted: make another channel the default first.")
    if count := channel.releases.count():
        raise ValidationError(f"{channel.name} has {count} release{'s' if count > 1 else ''} and cannot be deleted.")
    record_event(actor=actor, category=Event.Category.DELETED, document=channel, space=channel.project.space)
    channel.delete()
