from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from deployments.api.serializers import ServerTaskSerializer
from deployments.models import ServerTask
from deployments.services.tasks import server_tasks_visible_to


class ServerTaskViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ServerTaskSerializer
    item_type = "Task"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        tasks = server_tasks_visible_to(self.request.user)
        if self.kwargs.get("space_id"):
            tasks = tasks.filter(space_id=self.kwargs["space_id"].removeprefix("Spaces-"))
        if self.request.query_params.get("states"):
            tasks = tasks.filter(state__in=self.request.query_params["states"].split(","))
        if self.request.query_params.get("name"):
            tasks = tasks.filter(name=self.request.query_params["name"])
        return tasks

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=ServerTask.pk_from_octopus_id(self.kwargs["pk"]))

    def create(self, request, *args, **kwargs):
        """`POST /api/tasks` with `{"Name": "Health", "Arguments": {"MachineIds": ["Workers-1"]}}`, as Octopus queues one."""
        from infrastructure.models import Worker
        from infrastructure.services.health import request_health_check
        from portal.permissions import Permission
        from portal.services.access import require_permission

        body = request.data if isinstance(request.data, dict) else {}
        if body.get("Name") == "AdHocScript":
            return self.create_adhoc_script(request, body.get("Arguments"))
        if body.get("Name") != "Health":
            raise ValidationError({"Name": ["Reef queues Health and AdHocScript tasks here; deployments have their own endpoint."]})
        ids = (body.get("Arguments") or {}).get("MachineIds") or []
        if not isinstance(ids, list) or len(ids) != 1 or not isinstance(ids[0], str):
            raise ValidationError({"Arguments.MachineIds": ["Give exactly one worker id."]})
        worker = Worker.objects.filter(pk=Worker.pk_from_octopus_id(ids[0]) or 0).select_related("space").first()
        from portal.services.access import spaces_visible_to

        if worker is None or not spaces_visible_to(request.user).filter(pk=worker.space_id).exists():
            raise ValidationError({"Arguments.MachineIds": [f"No worker {ids[0]}."]})
        require_permission(request.user, Permission.WORKER_EDIT, space=worker.space)
        task = request_health_check(actor=request.user, worker=worker)
        return Response(self.get_serializer(task).data, status=status.HTTP_201_CREATED)

    def create_adhoc_script(self, request, arguments):
        """The Script Console: `{"Name": "AdHocScript", "Arguments": {"ScriptBody", "Syntax", "WorkerPoolId" | "MachineIds"}}`."""
        from django.core.exceptions import ValidationError as ServiceError

        from deployments.services import deploy
        from infrastructure.models import Worker, WorkerPool
        from portal.services.access import get_space_for_user, spaces_visible_to

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
            pool = WorkerPool.objects.filter(space=space, pk=WorkerPool.pk_from_octopus_id(arguments["WorkerPoolId"]) or 0).first()
            if pool is None:
                raise ValidationError({"Arguments.WorkerPoolId": [f"No worker pool {arguments['WorkerPoolId']!r} in this space."]})
        try:
            task = deploy.run_adhoc_script(actor=request.user, space=space, syntax=str(arguments.get("Syntax") or "Bash"),
                                           script_body=str(arguments.get("ScriptBody") or ""), worker_pool=pool, workers=workers)
        except ServiceError as error:
            raise ValidationError({f"Arguments.{k}": v for k, v in error.message_dict.items()}) from None
        return Response(self.get_serializer(task).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["get"])
    def raw(self, request, *args, **kwargs):
        task = self.get_object()
        text = "\n".join(f"{line.occurred:%Y-%m-%d %H:%M:%S}  {line.category:<9} {line.text}" for line in task.log_lines.all())
        response = HttpResponse(text + "\n", content_type="text/plain; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{task.octopus_id}.log.txt"'
        return response
