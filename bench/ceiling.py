"""The ceiling: a bare Flask endpoint doing one INSERT, served the same way as the app.

`gunicorn -c gunicorn.conf.py bench.ceiling:app` with DATABASE_URL set. Same server settings,
same database, same pool size: what this machine can do for one write per request with no
authentication, validation, scoping, events or audit.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from flask import Flask, jsonify, request

TABLE = sa.Table(
    "bench_ceiling", sa.MetaData(),
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)

app = Flask(__name__)
_ENGINES: list[sa.Engine] = []


def _engine() -> sa.Engine:
    """One pool per worker process, made on first use (the module is imported by the bench)."""
    if not _ENGINES:
        _ENGINES.append(sa.create_engine(os.environ["DATABASE_URL"], pool_size=5,
                                         max_overflow=5, pool_pre_ping=True))
    return _ENGINES[0]


@app.post("/insert")
def insert():
    payload = request.get_json(force=True)
    with _engine().begin() as connection:
        new_id = connection.execute(
            TABLE.insert().values(at=sa.func.now(), payload=str(payload)[:500])
            .returning(TABLE.c.id)
        ).scalar_one()
    return jsonify(id=new_id), 201
