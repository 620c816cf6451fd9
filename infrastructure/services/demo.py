"""The first run shows a worker: on an empty database, a local polling agent under var/ registered
in a `Local workers` pool (never the Default Worker Pool). `REEF_DEMO=0` skips it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infrastructure.models import Worker, WorkerPool
from infrastructure.services import pools, workers
from infrastructure.services.certificates import current_server_certificate
from infrastructure.services.workers import Endpoint, WorkerSpec
from portal.models import Space

POOL_NAME = "Local workers"
WORKER_NAME = "local-agent"


def ensure_local_demo_worker(*, var_dir: Path, polling_port: int) -> Path | None:
    """The demo agent's home if it should run (first run, or it was set up before and still exists)."""
    home = Path(var_dir) / "demo-agent"
    config_path = home / "tentacle.json"
    if config_path.exists():
        subscription = json.loads(config_path.read_text()).get("Subscription")
        return home if Worker.objects.filter(uri=f"poll://{subscription}/").exists() else None
    if Worker.objects.exists() or WorkerPool.objects.filter(name=POOL_NAME).exists():
        return None  # not an empty database: leave it alone
    tentacle = [sys.executable, "-m", "tentacle_agent"]
    subprocess.run([*tentacle, "create-instance", "--home", str(home)], check=True, capture_output=True)
    trusted = home / "server.pem"
    trusted.write_text(current_server_certificate().certificate_pem)
    subprocess.run(
        [
            *tentacle,
            "configure",
            "--home",
            str(home),
            "--polling",
            "--trust-pem",
            str(trusted),
            "--server-comms-address",
            f"https://127.0.0.1:{polling_port}/",
        ],
        check=True,
        capture_output=True,
    )
    config = json.loads(config_path.read_text())
    space = Space.objects.default()
    pool = pools.create_worker_pool(
        actor=None,
        space=space,
        name=POOL_NAME,
        description="A polling agent on this machine, started by `make run` (REEF_DEMO=0 skips it).",
    )
    workers.register_worker(
        actor=None,
        space=space,
        spec=WorkerSpec(
            name=WORKER_NAME,
            worker_pools=[pool],
            endpoint=Endpoint(
                communication_style=Worker.CommunicationStyle.POLLING,
                uri=f"poll://{config['Subscription']}/",
                thumbprint=config["Thumbprint"],
            ),
        ),
    )
    return home
