import subprocess
import sys
import threading

import pytest

from tests.e2e.conftest import ROOT, free_port, live_reef, server_env  # noqa: F401 - live_reef is shared with end-to-end tests


@pytest.fixture
def polling_endpoint(transactional_db):
    """`manage.py run_polling_endpoint` on loopback over the test database; yields its https address."""
    from infrastructure.services.certificates import current_server_certificate

    current_server_certificate()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_polling_endpoint", "--bind", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert "listening" in process.stdout.readline()
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # never let its pipe fill
    yield f"https://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=10)
