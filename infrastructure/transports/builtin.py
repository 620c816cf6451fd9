"""The built-in worker: the server itself runs the step in a child process, through the same script
service the agent uses (one per server process, so tickets live across calls)."""

from __future__ import annotations

import os
import pwd
import threading
from pathlib import Path

from django.conf import settings

from infrastructure.transports import RetryCallback
from infrastructure.transports.envelope import EnvelopeTransport
from tentacle_agent.service import ScriptService

# Scripts on the server see only these: never DATABASE_URL, REDIS_URL, SECRET_KEY or the master key.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL")


def builtin_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in _INHERITED if name in os.environ}


def builtin_worker_account() -> tuple[str, bool]:
    """The account built-in scripts run as, and whether it is the server's own: REEF_BUILTIN_WORKER_USER
    when the server runs as root (only root can switch accounts), else the server's own account."""
    if os.geteuid() == 0 and settings.REEF_BUILTIN_WORKER_USER:
        return settings.REEF_BUILTIN_WORKER_USER, settings.REEF_BUILTIN_WORKER_USER == "root"
    try:
        return pwd.getpwuid(os.geteuid()).pw_name, True
    except KeyError:
        return f"uid {os.geteuid()}", True


def _confine_var_dir(home: Path) -> None:
    """The worker's account must reach its work folders under var/builtin-worker/Work, and nothing else
    of var/: var/ becomes enter-only for others (no listing) and every other entry in it loses all
    access for others (the master key, the secret key, the SQLite database and its journals…)."""
    var = Path(settings.VAR_DIR)
    os.chmod(var, (os.stat(var).st_mode & 0o770) | 0o001)
    for entry in var.iterdir():
        if entry.name not in (home.name, "staticfiles") and not entry.is_symlink():  # static files are public
            os.chmod(entry, entry.stat().st_mode & 0o7770)
    os.chmod(home, 0o711)


_service: ScriptService | None = None
_service_lock = threading.Lock()


def builtin_script_service() -> ScriptService:
    """One per server process; a lock, because concurrent tasks ask at once and tickets live in it."""
    global _service
    with _service_lock:
        if _service is None:
            home = Path(settings.VAR_DIR) / "builtin-worker"
            home.mkdir(parents=True, exist_ok=True)
            account, own = builtin_worker_account()
            run_as = None if own else account
            if run_as:
                _confine_var_dir(home)
            _service = ScriptService(home, environment=builtin_environment(), run_as=run_as)
        return _service


class BuiltinTransport(EnvelopeTransport):
    """No network between the server and itself: nothing to retry."""

    def __init__(self, timeout: int = 60, *, on_retry: RetryCallback | None = None):  # noqa: D107 - no Worker row
        self.worker = None
        self.name = "the built-in worker"
        self.timeout = timeout
        self.retry_count, self.retry_wait = 0, 0
        self.on_retry = on_retry

    def exchange(self, envelope: dict, timeout: float) -> dict:
        return builtin_script_service().handle(envelope)
