"""`flask sweep` and `flask worker` (registered by service.cli)."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import click
from flask import current_app
from sqlmodel import Session

from service.db import engine


def session_factory() -> Session:
    return Session(engine(), expire_on_commit=False)


def _parse_instant(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use ISO 8601, e.g. 2027-01-04T09:00:00Z") from None
    if parsed.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2027-01-04T09:00:00Z")
    return parsed.astimezone(UTC)


@click.command("sweep")
@click.option("--as-of", "as_of", default=None, metavar="ISO-8601",
              help="Evaluate the timers as of this instant (default: now).")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10000))
@click.option("--quiet", is_flag=True, help="Only the summary, no progress bar.")
def sweep_command(as_of: str | None, batch_size: int, quiet: bool) -> None:
    """Run every timer once: raise overdue flags, escalate, finish elapsed journeys."""
    from service import clock
    from service.jobs.sweep import Sweep

    instant = _parse_instant(as_of) or clock.now()
    job = Sweep(session_factory, instant, batch_size=batch_size)
    found = job.candidates()
    total = sum(len(ids) for ids in found.values())
    if quiet or total <= batch_size:
        job.process(found)
    else:
        with click.progressbar(length=total, label=f"sweeping {total} candidates") as bar:
            job.progress = bar.update
            job.process(found)
    for line in job.summary.lines():
        click.echo(line)


@click.command("worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option("--idle-seconds", default=2.0, show_default=True, type=float)
def worker_command(once: bool, idle_seconds: float) -> None:
    """Deliver outbox messages (email; other channels when registered) and keep the flows
    report's rows up to date."""
    from service.jobs import worker

    settings = current_app.config["SETTINGS"]
    if once:
        result = worker.drain(session_factory, settings)
        click.echo(f"outbox: {result.sent} sent, {result.retried} to retry, "
                   f"{result.failed} failed")
        click.echo(f"flows: {worker.refresh_flows(session_factory)} referrals refreshed")
        return
    stopping = {"now": False}

    def _stop(_signum, _frame):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"outbox worker started ({settings.EMAIL_BACKEND} email backend)")
    worker.run_forever(session_factory, settings, idle_seconds=idle_seconds,
                       should_stop=lambda: stopping["now"])
    click.echo("outbox worker stopped")
