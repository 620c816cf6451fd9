"""Talking to the Reef server's REST API (X-Octopus-ApiKey), for register-worker and deregister-worker."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request


class RegistrationError(Exception):
    pass


class ServerApi:
    """The portal's web address uses ordinary TLS verification; the server *thumbprint* the agent pins
    belongs to the comms certificate, which arrives through `certificate-global` and is checked there."""

    def __init__(self, server: str, api_key: str | None):
        parsed = urllib.parse.urlparse(server)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise RegistrationError(f"--server must be an http:// or https:// URL, not {server!r}.")
        self.base = server.rstrip("/")
        self.api_key = api_key

    def request(self, method: str, path: str, body: dict | None = None):
        return self.send(method, path, body)[1]

    def send(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        """(HTTP status, decoded JSON body); any failure is a RegistrationError that says what went wrong."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.api_key:
            headers["X-Octopus-ApiKey"] = self.api_key
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = response.read()
                return response.status, (json.loads(payload) if payload else None)
        except urllib.error.HTTPError as error:
            try:
                detail = json.loads(error.read())
                message = "; ".join(detail.get("Errors") or []) or detail.get("ErrorMessage") or ""
            except ValueError:
                message = ""
            if error.code in (401, 403):
                raise RegistrationError(
                    f"The server refused the API key ({error.code}): {message or 'check the key and its permissions'}."
                ) from None
            if error.code == 400 and message:
                raise RegistrationError(f"The server refused the request: {message}") from None
            raise RegistrationError(
                f"{method} {path} failed with HTTP {error.code}: {message or error.reason}"
            ) from None
        except urllib.error.URLError as error:
            raise RegistrationError(f"Cannot reach {self.base}: {error.reason}.") from None
        except (OSError, ValueError) as error:
            raise RegistrationError(f"Talking to {self.base} failed: {error}.") from None

    def space(self, name: str | None) -> dict:
        spaces = self.request("GET", "/api/spaces/all") or []
        for space in spaces:
            if (name is None and space.get("IsDefault")) or (
                name is not None and space.get("Name", "").lower() == name.lower()
            ):
                return space
        known = ", ".join(s.get("Name", "?") for s in spaces) or "none you may see"
        raise RegistrationError(
            f"No space named {name!r} (spaces: {known})." if name else "No default space is visible to this key."
        )

    def pool_ids(self, space_id: str, names: list[str]) -> list[str]:
        pools = {p["Name"].lower(): p["Id"] for p in self.request("GET", f"/api/{space_id}/workerpools/all") or []}
        missing = [n for n in names if n.lower() not in pools]
        if missing:
            raise RegistrationError(
                f"No worker pool named {', '.join(repr(m) for m in missing)} "
                f"(pools: {', '.join(sorted(pools)) or 'none'})."
            )
        return [pools[n.lower()] for n in names]

    def policy_id(self, space_id: str, name: str) -> str:
        for policy in self.request("GET", f"/api/{space_id}/machinepolicies/all") or []:
            if policy["Name"].lower() == name.lower():
                return policy["Id"]
        raise RegistrationError(f"No machine policy named {name!r}.")

    def server_certificate(self) -> dict:
        return self.request("GET", "/api/certificates/certificate-global")

    def register_worker(self, space_id: str, body: dict) -> tuple[dict, bool]:
        """(the worker, whether it is new). One call, one transaction on the server: the worker with this
        agent's thumbprint is updated in place, else one is created; `Force` takes over a same-named one."""
        status, worker = self.send("POST", f"/api/{space_id}/workers/register", body)
        if not isinstance(worker, dict):
            raise RegistrationError("The server answered the registration with something that is not a worker.")
        return worker, status == 201

    def workers_with_thumbprint(self, space_id: str, thumbprint: str) -> list[dict]:
        return (self.request("GET", f"/api/{space_id}/workers?thumbprint={thumbprint}&take=100") or {}).get("Items", [])
