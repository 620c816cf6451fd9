"""Websocket routes of every app."""

from servertasks.routing import websocket_urlpatterns as task_routes

websocket_urlpatterns: list = [*task_routes]
