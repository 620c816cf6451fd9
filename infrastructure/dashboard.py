from django.db.models import Count, Q

from infrastructure.models import Worker, WorkerPool
from portal.permissions import Permission
from portal.services.access import has_permission


def worker_cards(user, space) -> list[dict]:
    if not has_permission(user, Permission.WORKER_VIEW, space=space):
        return []
    counts = Worker.objects.filter(space=space).aggregate(
        total=Count("id"), healthy=Count("id", filter=Q(health_status=Worker.HealthStatus.HEALTHY, is_disabled=False))
    )
    pools = WorkerPool.objects.filter(space=space).count()
    base = f"/{space.octopus_id}/infrastructure"
    return [
        {"title": "Worker pools", "value": pools, "detail": "groups of workers", "url": f"{base}/workerpools/"},
        {
            "title": "Workers",
            "value": counts["total"],
            "detail": f"{counts['healthy']} healthy",
            "url": f"{base}/workers/",
        },
    ]
