from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as ServiceError
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from deployments.api.serializers import ServerTaskSerializer
from deployments.services import deploy
from deployments.services.tasks import cancel_server_task, filter_server_tasks
from infrastructure.models import Worker, WorkerPool
from infrastructure.services.health import request_health_check
from portal.permissions import Permission
from portal.services.access import get_space_for_user, require_permission, spaces_visible_to
from servertasks.models import ActivityNode, ServerTask
from servertasks.services import logstore
from servertasks.services.tasks import server_tasks_visible_to

MAX_SEQUENCE = 2**31 - 1  # TaskLogChunk's sequences are PositiveIntegerFields


def task_details(task: ServerTask, *, after: int, tail: int | None, take: int | None, serializer) -> dict:
    """Octopus's ServerTaskDetails. Lines come from storage in one ordered query: after `after`, at most
    `take` of them (a poller pages through a long log), or the last `tail` of each node."""
    nodes = list(ActivityNode.objects.filter(task=task).order_by("id"))
    if tail is not None:
        lines = []
        for node_id in [node.pk for node in nodes] + [None]:
            lines.extend(logstore.tail_lines(task_id=task.pk, node_id=node_id, count=tail, after=after))
    else:
        lines = logstore.read_lines(task_id=task.pk, after=after, limit=take)
    elements: dict[int | None, list[dict]] = {}
    for line in lines:
        elements.setdefault(line.node_id, []).append(
            {
                "Sequence": line.sequence,
                "Category": line.category,
                "MessageText": line.text,
                "OccurredAt": line.occurred,
            }
        )

    def resource(node) -> dict:
        return {
            "Id": f"{task.octopus_id}_{node.pk}",
            "Name": node.name,
            "Status": node.status,
            "Started": node.started,
            "Ended": node.ended,
            "ProgressPercentage": node.progress or (100 if node.ended else 0),
            "LogElements": elements.get(node.pk, []),
            "Children": [resource(c) for c in nodes if c.parent_id == node.pk],
        }

    roots = [resource(node) for node in nodes if node.parent_id is None]
    if elements.get(None):
        roots.insert(
            0,
            {
                "Id": f"{task.octopus_id}_log",
                "Name": task.description,
                "Status": "Running" if not task.is_completed else "Success",
                "Started": task.started,
                "Ended": task.completed,
                "ProgressPercentage": 0,
                "LogElements": elements[None],
                "Children": [],
            },
        )
    finished = sum(1 for node in nodes if node.ended)
    return {
        "Task": serializer(task).data,
        "ActivityLogs": roots,
        "PhysicalLogSize": logstore.line_count(task.pk),
        "Progress": {
            "ProgressPercentage": int(100 * finished / len(nodes)) if nodes else (100 if task.is_completed else 0),
            "EstimatedTimeRemaining": None,
        },
    }


def _whole_number(params, name: str, default: int | None, minimum: int) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"{raw!r} is not a whole number."]}) from None
    if not minimum <= value <= MAX_SEQUENCE:
        raise ValidationError({name: [f"Must be between {minimum} and {MAX_SEQUENCE}."]})
    return value


class ServerTaskViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ServerTaskSerializer
    item_type = "Task"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        tasks = server_tasks_visible_to(self.request.user)
        if self.kwargs.get("space_id"):
            tasks = tasks.filter(space=get_space_for_user(self.request.user, self.kwargs["space_id"]))  # 404 if unseen
        tasks, errors = filter_server_tasks(tasks, self.request.query_params)
        if errors:
            raise ValidationError({field: [reason] for field, reason in errors.items()})
        if self.request.query_params.get("ids"):  # ServerTaskWaiter polls its tasks by ids
            pks = [ServerTask.pk_from_octopus_id(i.strip()) for i in self.request.query_params["ids"].split(",")]
            tasks = tasks.filter(pk__in=[pk for pk in pks if pk is not None])
        return tasks

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=ServerTask.pk_from_octopus_id(self.kwargs["pk"]))

    @extend_schema(
        request=inline_serializer(
            "TaskCreate",
            {
                "Name": serializers.ChoiceField(choices=["Health", "AdHocScript"]),
                "Arguments": serializers.DictField(
                    help_text="Health: MachineIds (one worker id). AdHocScript: ScriptBody, Syntax, "
                    "and WorkerPoolId or MachineIds."
                ),
            },
        ),
        responses={201: ServerTaskSerializer},
    )
    def create(self, request, *args, **kwargs):
        """`POST /api/tasks` with `{"Name": "Health", "Arguments": {"MachineIds": ["Workers-1"]}}`, as Octopus
        queues one."""
        body = request.data if isinstance(request.data, dict) else {}
        if body.get("Name") == "AdHocScript":
            return self.create_adhoc_script(request, body.get("Arguments"))
        if body.get("Name") != "Health":
            raise ValidationError(
                {"Name": ["Reef queues Health and AdHocScript tasks here; deployments have their own endpoint."]}
            )
        arguments = body.get("Arguments") or {}
        if not isinstance(arguments, dict):  # e.g. a form field holding text
            raise ValidationError({"Arguments": ['An object, such as {"MachineIds": ["Workers-1"]}.']})
        ids = arguments.get("MachineIds") or []
        if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], str):
            raise ValidationError({"Arguments.MachineIds": ["Give exactly one worker id."]})
        worker = Worker.objects.filter(pk=Worker.pk_from_octopus_id(ids[0]) or 0).select_related("space").first()

        if worker is None or not spaces_visible_to(request.user).filter(pk=worker.space_id).exists():
            raise ValidationError({"Arguments.MachineIds": [f"No worker {ids[0]}."]})
        require_permission(request.user, Permission.WORKER_EDIT, space=worker.space)
        task = request_health_check(actor=request.user, worker=worker)
        return Response(self.get_serializer(task).data, status=status.HTTP_201_CREATED)

    def create_adhoc_script(self, request, arguments):
        """The Script Console:
        `{"Name": "AdHocScript", "Arguments": {"ScriptBody", "Syntax", "WorkerPoolId" | "MachineIds"}}`."""
        if not isinstance(arguments, dict):
            raise ValidationError({"Arguments": ["Give ScriptBody, Syntax and WorkerPoolId or MachineIds."]})
        space_id = self.kwargs.get("space_id")
        if space_id is None:
            default = spaces_visible_to(request.user).filter(is_default=True).first()
            space_id = default.octopus_id if default else "Spaces-0"
        space = get_space_for_user(request.user, space_id)
        ids = arguments.get("MachineIds") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValidationError({"Arguments.MachineIds": ["A list of worker ids."]})
        workers = list(Worker.objects.filter(space=space, pk__in=[Worker.pk_from_octopus_id(i) or 0 for i in ids]))
        if len(workers) != len(ids):
            raise ValidationError({"Arguments.MachineIds": ["Some of these are not workers of this space."]})
        pool = None
        if arguments.get("WorkerPoolId"):
            pool = WorkerPool.objects.filter(
                space=space, pk=WorkerPool.pk_from_octopus_id(arguments["WorkerPoolId"]) or 0
            ).first()
            if pool is None:
                raise ValidationError(
                    {"Arguments.WorkerPoolId": [f"No worker pool {arguments['WorkerPoolId']!r} in this space."]}
                )
        try:
            task = deploy.run_adhoc_script(
                actor=request.user,
                space=space,
                syntax=str(arguments.get("Syntax") or "Bash"),
                script_body=str(arguments.get("ScriptBody") or ""),
                worker_pool=pool,
                workers=workers,
            )
        except ServiceError as error:
            raise ValidationError({f"Arguments.{k}": v for k, v in error.message_dict.items()}) from None
        return Response(self.get_serializer(task).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def raw(self, request, *args, **kwargs):
        """The whole log as text, streamed: a million lines never sit in memory at once."""
        task = self.get_object()
        response = StreamingHttpResponse(logstore.raw_text(task_id=task.pk), content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{task.octopus_id}.log.txt"'
        return response

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def details(self, request, *args, **kwargs):
        """Octopus's ServerTaskDetails: the task and its ActivityLogs tree. `after=N` gives only lines after
        sequence N and `take=M` at most M of them (the task page's fallback when websockets are unavailable pages
        through a long log this way); `tail=N` the last N lines of each node."""
        task = self.get_object()
        params = request.query_params
        after = _whole_number(params, "after", -1, -1)
        tail = _whole_number(params, "tail", None, 0)
        take = _whole_number(params, "take", None, 1)
        return Response(task_details(task, after=after, tail=tail, take=take, serializer=self.get_serializer))

    @extend_schema(request=None, responses={201: ServerTaskSerializer})
    @action(detail=False, methods=["post"], url_path=r"rerun/(?P<rerun_id>[^/]+)")
    def rerun(self, request, *args, rerun_id: str = "", **kwargs):
        """Octopus's `POST /api/tasks/rerun/{id}`: the same deployment, runbook run or script again, as a new task."""
        task = get_object_or_404(self.get_queryset(), pk=ServerTask.pk_from_octopus_id(rerun_id))
        if not task.is_completed:
            raise ValidationError(
                {"Task": [f"{task.octopus_id} is still {task.state}; re-run it once it has finished."]}
            )
        try:
            again = deploy.rerun_server_task(actor=request.user, task=task)
        except ServiceError as error:
            raise ValidationError(
                error.message_dict if hasattr(error, "error_dict") else {"Task": error.messages}
            ) from None
        except PermissionDenied:
            raise
        return Response(self.get_serializer(again).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs):
        task = self.get_object()
        require_permission(request.user, Permission.TASK_CANCEL, space=task.space)
        return Response(self.get_serializer(cancel_server_task(task=task, actor=request.user)).data)
