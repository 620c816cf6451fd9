from django.urls import path

from servertasks.consumers import TaskLogConsumer

websocket_urlpatterns = [path("ws/tasks/<int:task_id>/", TaskLogConsumer.as_asgi())]
