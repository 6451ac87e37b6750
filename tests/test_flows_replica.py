"""FLOWS_DATABASE_URL: the flows report reads its figures from a read replica when one is set
(docs/deploy.md), and the scope check stays on the primary."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import models
from service import create_app
from service.config import ConfigError, load_settings
from tests.conftest import signed_in_client
from tests.flows_factories import seed_flows

Q4 = "from=2026-10-01&to=2026-12-31"


def test_flows_figures_come_from_the_replica_when_one_is_set(app, app_config, db, demo,
                                                             tmp_path):
    seed_flows(db, demo)
    db.commit()
    query = f"/api/v1/flows?alliance={demo['alliance'].id}&{Q4}"
    manager = signed_in_client(app, "contracts@demo.stepdown.test")
    assert manager.get(query).get_json()["flow_matrix"]["total"]["current"] == 25

    # A replica that has not caught up with any referral yet: a second SQLite file.
    replica_url = f"sqlite:///{tmp_path / 'replica.db'}"
    replica = sa.create_engine(replica_url)
    models.metadata.create_all(replica)
    replica.dispose()
    with_replica = create_app({**app_config, "FLOWS_DATABASE_URL": replica_url})
    try:
        assert "stepdown.flows_engine" in with_replica.extensions
        manager = signed_in_client(with_replica, "contracts@demo.stepdown.test")
        body = manager.get(query).get_json()
        assert body["alliance"]["id"] == demo["alliance"].id  # scope: from the primary
        assert body["flow_matrix"]["total"]["current"] == 0  # figures: from the replica
        assert body["units"] == []
        page = manager.get(f"/flows?alliance={demo['alliance'].id}&{Q4}")
        assert page.status_code == 200
        # Other areas still read and write the primary.
        assert manager.get("/api/v1/flows?group=nonsense").status_code == 422
    finally:
        with_replica.extensions["stepdown.engine"].dispose()
        with_replica.extensions["stepdown.flows_engine"].dispose()


def test_without_the_setting_there_is_no_second_engine(app):
    assert "stepdown.flows_engine" not in app.extensions


@pytest.mark.parametrize("env", [
    {"FLOWS_DATABASE_URL": "mysql://reports/stepdown"},
    {"STEPDOWN_ENV": "production", "SECRET_KEY": "x" * 40, "BASE_URL": "https://stepdown.example",
     "DATABASE_URL": "postgresql+psycopg://db/stepdown", "TOKEN_PRIVATE_KEY_FILE": "/k.pem",
     "FLOWS_DATABASE_URL": "sqlite:///reports.db"},
])
def test_a_bad_replica_url_stops_start_up(env):
    with pytest.raises(ConfigError, match="FLOWS_DATABASE_URL"):
        load_settings(env)
