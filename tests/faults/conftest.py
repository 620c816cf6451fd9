"""One Reef node for the whole fault suite (starting one costs seconds): `manage.py serve` with its own
redis-server and its own PostgreSQL database, its demo polling agent Healthy. Each test does its damage
and then checks the aftermath; a test that stops the node starts it again."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.faults.harness import (
    Node,
    RedisServer,
    create_database,
    drop_database,
    drop_stale_fault_databases,
    leases,
    unfinished_tasks,
    wait_until,
)

pytestmark = pytest.mark.e2e


def _postgresql_reachable() -> bool:
    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.database = f"reef_faults_{os.getpid()}"
        self.redis = RedisServer(root / "redis").start()
        self.database_url = create_database(self.database)
        from cryptography.fernet import Fernet

        self.secrets = {"SECRET_KEY": Fernet.generate_key().decode(), "REEF_MASTER_KEY": Fernet.generate_key().decode()}
        self.node = Node(
            name="node-a",
            var_dir=root / "node-a",
            database_url=self.database_url,
            redis_url=self.redis.url,
            demo=True,
            secrets=self.secrets,
        )
        self.node.start()
        # Check the demo agent now rather than at the next sweep.
        demo = wait_until(
            lambda: next(
                (w["Id"] for w in self.node.api("GET", "/api/workers")["Items"] if w["Name"] == "local-agent"), None
            ),
            timeout=30,
            what="the demo agent registered",
        )
        self.node.api("POST", "/api/tasks", {"Name": "Health", "Arguments": {"MachineIds": [demo]}})
        self.worker = wait_until(
            lambda: next(
                (
                    w
                    for w in self.node.api("GET", "/api/workers")["Items"]
                    if w["Name"] == "local-agent" and w["HealthStatus"] == "Healthy"
                ),
                None,
            ),
            timeout=90,
            interval=0.5,
            what="the demo agent Healthy",
        )["Id"]

    def aftermath(self, node: Node | None = None) -> None:
        """What a user checks after any fault: Reef serves, nothing is left Executing, no lease is left."""
        node = node or self.node
        assert node.serves(), node.output()[-3000:]
        assert wait_until(
            lambda: not unfinished_tasks(self.database_url), timeout=60, interval=0.5, what="no task left Executing"
        ), unfinished_tasks(self.database_url)
        assert not leases(self.database_url)


@pytest.fixture(scope="session")
def cluster():
    if not _postgresql_reachable():
        pytest.skip("the fault suite needs PostgreSQL on 127.0.0.1:5432")
    drop_stale_fault_databases()
    root = Path(tempfile.mkdtemp(prefix="reef-faults-"))
    cluster = None
    try:
        cluster = Cluster(root)
        yield cluster
    finally:
        if cluster is not None:
            cluster.node.stop()
            cluster.redis.stop()
            drop_database(cluster.database)
        if not os.environ.get("REEF_FAULTS_KEEP"):  # keep the nodes' output to read after a failure
            shutil.rmtree(root, ignore_errors=True)
