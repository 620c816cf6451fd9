"""Websocket routes of every app."""

from deployments.routing import websocket_urlpatterns as deployment_routes

websocket_urlpatterns: list = [*deployment_routes]
