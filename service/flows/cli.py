"""`flask flows-refresh`: rewrite the flow rows and recount the flows counts.

For after the England bank holiday calendar changes (a new `holidays` release: stored working
days of referrals spanning the new holiday are then one day out), or to repair counts after
rows were loaded around the operations. Safe while the app runs: each batch locks its
referrals and commits on its own.
"""

from __future__ import annotations

import click
from sqlmodel import Session, select

from models import Referral
from service.db import engine
from service.flows.facts import rebuild_flow_counts, refresh_flows

BATCH = 2_000


@click.command("flows-refresh")
@click.option("--counts-only", is_flag=True,
              help="Only recount the monthly and daily counts from the flow rows.")
def flows_refresh(counts_only: bool) -> None:
    """Rewrite every sent referral's flow row, then recount the monthly and daily counts."""
    with Session(engine()) as db:
        rewritten = 0
        if not counts_only:
            ids = db.exec(select(Referral.id).where(Referral.sent_at.is_not(None))
                          .order_by(Referral.id)).all()
            for start in range(0, len(ids), BATCH):
                refresh_flows(db, ids[start:start + BATCH])
                db.commit()
            rewritten = len(ids)
        rebuild_flow_counts(db)
        db.commit()
    click.echo(f"Flow rows rewritten: {rewritten:,}; monthly and daily counts recounted.")
