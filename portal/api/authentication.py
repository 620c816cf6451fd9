"""API keys in the `X-Octopus-ApiKey` header, as Octopus's clients send them."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from portal.services.api_keys import user_for_api_key

HEADER = "HTTP_X_OCTOPUS_APIKEY"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        key = request.META.get(HEADER)
        if not key:
            return None
        user = user_for_api_key(key.strip())
        if user is None:
            raise exceptions.AuthenticationFailed("The API key you provided was not valid, has expired or was revoked.")
        return user, None

    def authenticate_header(self, request) -> str:
        return "X-Octopus-ApiKey"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Octopus-ApiKey"}
