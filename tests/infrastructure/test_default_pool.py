"""Exactly one default worker pool per space, even when many people press "make default" at once."""

import threading

import pytest
from django.db import connection

from infrastructure.models import WorkerPool
from infrastructure.services import pools


@pytest.mark.django_db(transaction=True)
def test_concurrent_make_default_leaves_exactly_one_default(administrator, space):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; SQLite serialises writers anyway")
    candidates = [pools.create_worker_pool(actor=administrator, space=space, name=f"Pool {n}") for n in range(8)]
    barrier = threading.Barrier(len(candidates))
    errors = []

    def press(pool):
        try:
            barrier.wait()
            pools.make_default_worker_pool(actor=administrator, pool=pool)
        except Exception as error:  # noqa: BLE001 - the assertion below reports it
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=press, args=(pool,)) for pool in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert WorkerPool.objects.filter(space=space, is_default=True).count() == 1


def test_the_database_itself_refuses_a_second_default(space):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        WorkerPool.objects.create(space=space, name="Sneaky", is_default=True)


def test_a_new_space_gets_its_own_default_pool(other_space, space):
    assert WorkerPool.objects.get(space=other_space, is_default=True).name == "Default Worker Pool"
    assert WorkerPool.objects.filter(is_default=True).count() == 2


def test_a_pool_that_is_some_workers_only_pool_cannot_be_deleted(administrator, space):
    from django.core.exceptions import ValidationError

    from infrastructure.services.workers import Endpoint, WorkerSpec, register_worker

    pool = pools.create_worker_pool(actor=administrator, space=space, name="Only home")
    register_worker(
        actor=administrator,
        space=space,
        spec=WorkerSpec(
            name="lonely",
            worker_pools=[pool],
            endpoint=Endpoint(communication_style="TentaclePassive", uri="https://lonely:10933/", thumbprint="F" * 40),
        ),
    )
    with pytest.raises(ValidationError, match="lonely"):
        pools.delete_worker_pool(actor=administrator, pool=pool)
