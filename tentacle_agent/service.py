"""The script service: one dispatcher for the protocol in docs/agent-protocol.md, shared by the
listening server, the polling client and (in-process) the server's built-in worker."""

from __future__ import annotations

import base64
import binascii
import os
import platform
import shutil
import socket
import sys
from pathlib import Path

from tentacle_agent import __version__
from tentacle_agent.packages import PackageCache, PackageError
from tentacle_agent.runner import FORGET_AFTER_SECONDS, NotFound, RunnerError, ScriptRunner

TOOLS = ["kubectl", "az", "aws", "terraform", "docker", "pwsh", "helm", "gcloud", "git"]


class ScriptService:
    def __init__(
        self,
        home: Path,
        package_limit_bytes: int = 5 * 1024**3,
        environment: dict | None = None,
        *,
        run_as: str | None = None,
        forget_after: float = FORGET_AFTER_SECONDS,
        subreaper: bool = False,
    ):
        """`run_as`, `forget_after`, `subreaper`: see ScriptRunner."""
        home = Path(home)
        self.packages = PackageCache(home / "Packages", package_limit_bytes)
        self.runner = ScriptRunner(
            home / "Work", self.packages, environment, run_as=run_as, forget_after=forget_after, subreaper=subreaper
        )

    def handle(self, envelope: object) -> dict:
        """A request envelope in, a response envelope out. Never raises."""
        if not isinstance(envelope, dict):
            return {"Id": None, "Error": {"Kind": "BadRequest", "Message": "A request is a JSON object."}}
        request_id, method, params = envelope.get("Id"), envelope.get("Method"), envelope.get("Params") or {}
        handler = getattr(self, f"_{method}", None) if isinstance(method, str) and method.isalpha() else None
        if handler is None:
            return {"Id": request_id, "Error": {"Kind": "BadRequest", "Message": f"Unknown method {method!r}."}}
        if not isinstance(params, dict):
            return {"Id": request_id, "Error": {"Kind": "BadRequest", "Message": "Params must be an object."}}
        try:
            return {"Id": request_id, "Result": handler(params)}
        except NotFound as error:
            return {"Id": request_id, "Error": {"Kind": "NotFound", "Message": str(error)}}
        except (RunnerError, PackageError, KeyError, TypeError, ValueError) as error:
            return {"Id": request_id, "Error": {"Kind": "BadRequest", "Message": str(error) or type(error).__name__}}
        except Exception as error:  # noqa: BLE001 - one bad request must not take the agent down
            return {"Id": request_id, "Error": {"Kind": "Internal", "Message": f"{type(error).__name__}: {error}"}}

    def _Health(self, params: dict) -> dict:  # noqa: N802 - protocol method names
        shells = [shell for shell in ("bash", "sh", "pwsh") if shutil.which(shell)]
        system = platform.system()
        return {
            "AgentVersion": __version__,
            "OperatingSystem": {"Darwin": "macOS"}.get(system, system),
            "Architecture": platform.machine(),
            "Hostname": socket.gethostname(),
            "Shells": shells,
            "Tools": {tool: shutil.which(tool) for tool in TOOLS if shutil.which(tool)},
            "PythonVersion": platform.python_version(),
            "ProcessId": os.getpid(),
            "Executable": sys.executable,
        }

    def _StartScript(self, params: dict) -> dict:  # noqa: N802
        return {"Ticket": self.runner.start(params)}

    def _GetStatus(self, params: dict) -> dict:  # noqa: N802
        return self.runner.status(
            params["Ticket"], int(params.get("AfterSequence", -1)), float(params.get("WaitSeconds", 0))
        )

    def _CancelScript(self, params: dict) -> dict:  # noqa: N802
        return self.runner.cancel(params["Ticket"])

    def _CompleteScript(self, params: dict) -> dict:  # noqa: N802
        return self.runner.complete(params["Ticket"])

    def _HasPackage(self, params: dict) -> dict:  # noqa: N802
        return {"Present": self.packages.has(params["Sha256"])}

    def _UploadPackage(self, params: dict) -> dict:  # noqa: N802
        try:
            data = base64.b64decode(params["ContentBase64"], validate=True)
        except (binascii.Error, TypeError):
            raise PackageError("ContentBase64 is not base64.") from None
        self.packages.add(params["Sha256"], data, params.get("FileName", ""))
        return {"Present": True}
