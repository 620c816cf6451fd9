"""Workers: register (page, API and agent alike), register again from an agent, edit, enable/disable,
delete; and the selectors."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from infrastructure.models import Account, MachinePolicy, Worker, WorkerPool
from infrastructure.services import validation as v
from infrastructure.services.policies import ensure_default_machine_policy
from portal.models import Event, Space, User
from portal.services.audit import differences, record_event, snapshot

_AUDITED = [
    "name",
    "communication_style",
    "uri",
    "thumbprint",
    "host",
    "port",
    "fingerprint",
    "account",
    "machine_policy",
    "is_disabled",
    "worker_pools",
]
Style = Worker.CommunicationStyle


@dataclass
class Endpoint:
    communication_style: str
    uri: str = ""
    thumbprint: str = ""
    host: str = ""
    port: int | None = None
    fingerprint: str = ""
    account: Account | None = None


@dataclass
class WorkerSpec:
    name: str
    endpoint: Endpoint
    worker_pools: list[WorkerPool] = field(default_factory=list)
    machine_policy: MachinePolicy | None = None
    is_disabled: bool = False


def _validate(space: Space, spec: WorkerSpec, exclude: Collection[int] = ()) -> WorkerSpec:
    """Normalises the spec in place and raises one ValidationError naming every bad field."""
    errors: dict[str, str] = {}
    _check_name(space, spec, exclude, errors)
    _check_pools_and_policy(space, spec, errors)
    e = spec.endpoint
    if e.communication_style not in Style.values:
        errors["communication_style"] = f"{e.communication_style!r} is not one of {', '.join(Style.values)}."
    elif e.communication_style in (Style.LISTENING, Style.POLLING):
        _check_tentacle_endpoint(e, exclude, errors)
    else:
        _check_ssh_endpoint(space, e, errors)
    if errors:
        raise ValidationError(errors)
    return spec


def _check_name(space: Space, spec: WorkerSpec, exclude: Collection[int], errors: dict[str, str]) -> None:
    spec.name = (spec.name or "").strip()
    if not spec.name:
        errors["name"] = "A worker needs a name."
    elif len(spec.name) > 200:
        errors["name"] = "A worker name has at most 200 characters."
    elif Worker.objects.filter(space=space, name__iexact=spec.name).exclude(pk__in=exclude).exists():
        errors["name"] = f"A worker named {spec.name!r} already exists in {space.name}."


def _check_pools_and_policy(space: Space, spec: WorkerSpec, errors: dict[str, str]) -> None:
    if not spec.worker_pools:
        errors["worker_pool_ids"] = "Choose at least one worker pool."
    else:
        foreign = [p.name for p in spec.worker_pools if p.space_id != space.pk]
        dynamic = [p.name for p in spec.worker_pools if not p.can_add_workers]
        if foreign:
            errors["worker_pool_ids"] = f"These pools are not in {space.name}: {', '.join(foreign)}."
        elif dynamic:
            errors["worker_pool_ids"] = f"Workers cannot be added by hand to dynamic pools: {', '.join(dynamic)}."
    if spec.machine_policy is not None and spec.machine_policy.space_id != space.pk:
        errors["machine_policy_id"] = f"That machine policy is not in {space.name}."


def _check_tentacle_endpoint(e: Endpoint, exclude: Collection[int], errors: dict[str, str]) -> None:
    """A listening or polling tentacle: its URI and thumbprint; the SSH fields are cleared."""
    e.thumbprint = v.normalise_thumbprint(e.thumbprint)
    e.uri = (e.uri or "").strip()
    if e.communication_style == Style.POLLING:
        e.uri = e.uri.lower()
    uri_error = (v.listening_uri_error if e.communication_style == Style.LISTENING else v.polling_uri_error)(e.uri)
    if uri_error:
        errors["uri"] = uri_error
    elif (
        e.communication_style == Style.POLLING
        and Worker.objects.filter(communication_style=Style.POLLING, uri=e.uri).exclude(pk__in=exclude).exists()
    ):
        errors["uri"] = "Another worker already uses this polling subscription."
    if thumb_error := v.thumbprint_error(e.thumbprint):
        errors["thumbprint"] = thumb_error
    e.host, e.port, e.fingerprint, e.account = "", None, "", None


def _check_ssh_endpoint(space: Space, e: Endpoint, errors: dict[str, str]) -> None:
    """An SSH worker: host, port, host-key fingerprint and account; the tentacle fields are cleared."""
    e.host = (e.host or "").strip()
    if host_error := v.host_error(e.host):
        errors["host"] = host_error
    e.port = 22 if e.port in (None, "") else e.port
    if not isinstance(e.port, int) or isinstance(e.port, bool) or not 0 < e.port < 65536:
        errors["port"] = "The port must be a whole number from 1 to 65535."
    e.fingerprint = (e.fingerprint or "").strip()
    if fp_error := v.fingerprint_error(e.fingerprint):
        errors["fingerprint"] = fp_error
    if e.account is None:
        errors["account_id"] = "SSH workers need an account (SSH key pair or username/password)."
    elif e.account.space_id != space.pk:
        errors["account_id"] = f"That account is not in {space.name}."
    elif e.account.account_type not in Account.SSH_TYPES:
        errors["account_id"] = (
            f"{e.account.name} is a {e.account.get_account_type_display()} account; "
            "SSH needs an SSH key pair or username/password account."
        )
    e.uri, e.thumbprint = "", ""


def _apply(worker: Worker, spec: WorkerSpec) -> None:
    e = spec.endpoint
    worker.name, worker.is_disabled = spec.name, spec.is_disabled
    worker.communication_style, worker.uri, worker.thumbprint = e.communication_style, e.uri, e.thumbprint
    worker.host, worker.port, worker.fingerprint, worker.account = e.host, e.port, e.fingerprint, e.account
    worker.machine_policy = spec.machine_policy or ensure_default_machine_policy(worker.space)


@transaction.atomic
def register_worker(*, actor: User | None, space: Space, spec: WorkerSpec) -> Worker:
    """The one way a worker comes to exist: the Add Worker page, the API and an agent's register-worker."""
    spec = _validate(space, spec)
    worker = Worker(space=space)
    _apply(worker, spec)
    try:
        with transaction.atomic():
            worker.save()
    except IntegrityError:
        raise ValidationError(
            {"name": f"A worker named {spec.name!r} (or with this subscription) already exists."}
        ) from None
    worker.worker_pools.set(spec.worker_pools)
    record_event(
        actor=actor,
        category=Event.Category.CREATED,
        document=worker,
        changes=differences({}, snapshot(worker, _AUDITED)),
    )
    return worker


@dataclass
class Registration:
    worker: Worker
    created: bool  # False: an existing worker was registered again (its id kept)


@transaction.atomic
def register_tentacle(*, actor: User | None, space: Space, spec: WorkerSpec, force: bool = False) -> Registration:
    """An agent's `register-worker` (and so an install-script run): the certificate thumbprint is the
    worker's identity, so registering again updates the same worker instead of making a new one.

    1. The worker holding this thumbprint (a tentacle in this space) is the one registered again: its
       id, disabled flag and object grants stay; its name and endpoint become the requested ones; its
       pools become the union of the ones it had and the requested ones (a re-run adds, it never takes a
       worker out of a pool someone put it in); its machine policy changes only when one is requested.
    2. A *different* worker holding the requested name is refused unless `force`. With `force` it is
       taken over in place (Octopus's --force modifies the existing machine), or, when step 1 found the
       agent's own worker, deleted so that worker can take the name.
    3. Everything is validated before anything changes, and all of it is one transaction: a refused
       request changes nothing."""
    if spec.endpoint.communication_style not in (Style.LISTENING, Style.POLLING):
        raise ValidationError({"communication_style": "An agent registers as TentaclePassive or TentacleActive."})
    thumbprint = v.normalise_thumbprint(spec.endpoint.thumbprint)
    name = (spec.name or "").strip()
    # Locks: the agent's own worker, then the name holder, so two registrations of one agent take turns.
    own = (
        Worker.objects.select_for_update()
        .filter(space=space, thumbprint=thumbprint, communication_style__in=[Style.LISTENING, Style.POLLING])
        .order_by("pk")
        .first()
        if not v.thumbprint_error(thumbprint)
        else None
    )
    named = (
        Worker.objects.select_for_update()
        .filter(space=space, name__iexact=name)
        .exclude(pk=own.pk if own else None)
        .order_by("pk")
        .first()
        if name
        else None
    )

    errors: dict[str, list[str]] = {}
    try:
        spec = _validate(space, spec, exclude=[w.pk for w in (own, named) if w])
    except ValidationError as error:
        errors = error.message_dict
    if named and not force and "name" not in errors:
        errors["name"] = [
            f"A worker named {named.name!r} ({named.octopus_id}) already exists in {space.name} with another "
            "certificate; register with force (register-worker --force) to replace it."
        ]
    if errors:
        raise ValidationError(errors)

    target = own or named
    if own and named:  # force: the agent's own worker keeps its identity and takes the name
        record_event(
            actor=actor,
            category=Event.Category.DELETED,
            document=named,
            message=f"Worker {named.name} replaced by {own.name} registering as {spec.name}",
        )
        named.delete()
    if target is None:
        spec.worker_pools = list(dict.fromkeys(spec.worker_pools))
        return Registration(worker=register_worker(actor=actor, space=space, spec=spec), created=True)

    before = snapshot(target, _AUDITED)
    endpoint_changed = (target.communication_style, target.uri, target.thumbprint) != (
        spec.endpoint.communication_style,
        spec.endpoint.uri,
        spec.endpoint.thumbprint,
    )
    spec.is_disabled = target.is_disabled
    spec.machine_policy = spec.machine_policy or target.machine_policy
    _apply(target, spec)
    fields = [
        "name",
        "is_disabled",
        "communication_style",
        "uri",
        "thumbprint",
        "host",
        "port",
        "fingerprint",
        "account",
        "machine_policy",
    ]
    if endpoint_changed:
        target.health_status, target.status_summary = (
            Worker.HealthStatus.UNKNOWN,
            "Registered with a new endpoint; check health again.",
        )
        fields += ["health_status", "status_summary"]
    target.save(update_fields=fields)  # health fields belong to the health checks unless the endpoint changed
    target.worker_pools.add(*spec.worker_pools)
    changes = differences(before, snapshot(target, _AUDITED))
    record_event(
        actor=actor,
        category=Event.Category.MODIFIED,
        document=target,
        changes=changes,
        message=f"Worker {target.name} registered again by its agent"
        + (" (replacing another certificate)" if target is named else ""),
    )
    return Registration(worker=target, created=False)


@transaction.atomic
def update_worker(*, actor: User, worker: Worker, spec: WorkerSpec) -> Worker:
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    before = snapshot(worker, _AUDITED)
    spec = _validate(worker.space, spec, exclude=[worker.pk])
    endpoint_changed = (worker.uri, worker.thumbprint, worker.host, worker.port, worker.fingerprint) != (
        spec.endpoint.uri,
        spec.endpoint.thumbprint,
        spec.endpoint.host,
        spec.endpoint.port,
        spec.endpoint.fingerprint,
    )
    _apply(worker, spec)
    if endpoint_changed:
        worker.health_status, worker.status_summary = (
            Worker.HealthStatus.UNKNOWN,
            "The endpoint changed; check health again.",
        )
    worker.save()
    worker.worker_pools.set(spec.worker_pools)
    changes = differences(before, snapshot(worker, _AUDITED))
    if changes:
        record_event(actor=actor, category=Event.Category.MODIFIED, document=worker, changes=changes)
    return worker


@transaction.atomic
def set_worker_disabled(*, actor: User, worker: Worker, disabled: bool) -> Worker:
    updated = Worker.objects.filter(pk=worker.pk, is_disabled=not disabled).update(is_disabled=disabled)
    worker.refresh_from_db()
    if updated:
        record_event(
            actor=actor,
            category=Event.Category.MODIFIED,
            document=worker,
            message=f"Worker {worker.name} {'disabled' if disabled else 'enabled'}",
            changes={"is_disabled": [not disabled, disabled]},
        )
        return worker


@transaction.atomic
def delete_worker(*, actor: User, worker: Worker) -> None:
    record_event(actor=actor, category=Event.Category.DELETED, document=worker)
    worker.delete()


# Selectors ------------------------------------------------------------------------------------


def workers_in_space(space: Space) -> QuerySet[Worker]:
    return Worker.objects.filter(space=space).select_related("machine_policy").prefetch_related("worker_pools")


def pools_of_workers(worker_ids: Collection[int]) -> dict[int, list[tuple[int, str]]]:
    """(pool id, name) of each worker's pools in pool order, for a page of workers: one query, no model objects."""
    pools: dict[int, list[tuple[int, str]]] = {}
    memberships = (
        Worker.worker_pools.through.objects.filter(worker_id__in=worker_ids)
        .order_by("workerpool__sort_order", "workerpool__name")
        .values_list("worker_id", "workerpool_id", "workerpool__name")
    )
    for worker_id, pool_id, name in memberships:
        pools.setdefault(worker_id, []).append((pool_id, name))
    return pools


def workers_available_in_pool(pool: WorkerPool) -> QuerySet[Worker]:
    return pool.workers.filter(
        is_disabled=False, health_status__in=[Worker.HealthStatus.HEALTHY, Worker.HealthStatus.HAS_WARNINGS]
    )
