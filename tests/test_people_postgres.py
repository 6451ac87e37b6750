"""On PostgreSQL: parallel retries of one creating POST make one row."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import func, select

from models import AuditEvent, IdempotencyRecord, Person
from tests.conftest import signed_in_client
from tests.people_fixtures import person_body, test_range_nhs_number

PARALLEL = 50


@pytest.mark.postgres
def test_50_parallel_retries_with_one_idempotency_key_create_one_person(app, demo, db):
    clients = [signed_in_client(app, "coordinator@demo.stepdown.test") for _ in range(PARALLEL)]
    body = person_body()
    headers = {"Idempotency-Key": "parallel-register-1"}

    def attempt(client):
        response = client.post("/api/v1/people", json=body, headers=headers)
        return response.status_code, response.get_json(), response.headers.get("ETag")

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(attempt, clients))

    statuses = [status for status, _body, _etag in results]
    assert statuses == [201] * PARALLEL, statuses
    assert len({(b["id"], etag) for _s, b, etag in results}) == 1
    db.expire_all()
    assert db.exec(select(func.count()).select_from(Person)).one() == 1
    assert db.exec(select(func.count()).select_from(IdempotencyRecord)).one() == 1
    creates = db.exec(select(func.count()).select_from(AuditEvent)
                      .where(AuditEvent.action == "create",
                             AuditEvent.record_type == "person")).one()
    assert creates == 1


@pytest.mark.postgres
def test_parallel_registrations_of_one_nhs_number_without_a_key_make_one_person(app, demo, db):
    clients = [signed_in_client(app, "coordinator@demo.stepdown.test") for _ in range(10)]
    body = person_body(nhs_number=test_range_nhs_number(321))

    def attempt(client):
        return client.post("/api/v1/people", json=body).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(attempt, clients))
    assert statuses == [201] + [409] * 9, statuses
    db.expire_all()
    assert db.exec(select(func.count()).select_from(Person)).one() == 1
