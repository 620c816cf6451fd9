"""Websocket routes; each app appends its own consumers' patterns."""

websocket_urlpatterns: list = []
