"""Flask commands: db upgrade, demo-data, create-user, create-client."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlmodel import Session, select

from models import ApiClient, Membership, Organisation, Team, User
from models.vocab import ROLES
from service import migrations
from service.auth.passwords import hash_password
from service.auth.permissions import SCOPES
from service.db import engine

db_cli = AppGroup("db", help="Database migrations.")


def _url() -> str:
    return current_app.config["SETTINGS"].DATABASE_URL


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    migrations.upgrade(_url(), revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. base)."""
    migrations.downgrade(_url(), revision)
    click.echo(f"database at {revision}")


@click.command("demo-data")
@click.option("--scale", "scale", type=click.IntRange(min=1), default=None, metavar="N",
              help="Also generate a realistic alliance around N referrals (bulk; once per "
                   "database).")
@click.option("--seed", default=1, show_default=True, help="Random seed for --scale.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Last day of the generated history (default: today, UTC).")
def demo_data(scale: int | None, seed: int, as_of: datetime | None) -> None:
    """Load the fictional demo alliance (idempotent); with --scale N, generate N more referrals."""
    from service.demo import DEMO_PASSWORD, USERS, load_demo_data
    from service.people.demo import load_demo_offers_and_people
    from service.referrals.demo import load_demo_journeys_and_referrals

    with Session(engine()) as db:
        base = load_demo_data(db)
        base.update(load_demo_offers_and_people(db, base))
        load_demo_journeys_and_referrals(db, base)
        db.commit()
    click.echo(f"Demo data loaded. Demo logins (password: {DEMO_PASSWORD}):")
    for email, _name, _org, _team, role, _m in USERS:
        click.echo(f"  {role:<18} {email}")
    if scale:
        _generate_scaled(scale, seed, as_of.replace(tzinfo=UTC) if as_of else None)


def _generate_scaled(n: int, seed: int, as_of: datetime | None) -> None:
    from service.demo_scale import AlreadyGenerated, generate
    from service.demo_scale.alliance import EMAIL_DOMAIN

    started = time.perf_counter()
    try:
        with click.progressbar(length=n, label=f"Generating {n:,} referrals",
                               show_pos=True, show_eta=True) as bar:
            summary = generate(engine(), n, seed=seed, as_of=as_of, progress=bar.update)
    except AlreadyGenerated as exc:
        raise click.ClickException(str(exc)) from None
    rows = ", ".join(f"{count:,} {table}" for table, count in summary.rows.items())
    click.echo(f"Generated in {time.perf_counter() - started:.0f} s: "
               f"{summary.organisations} organisations, {rows}.")
    click.echo(f"Generated staff sign in as e.g. coordinator2.1@{EMAIL_DOMAIN} with the demo "
               "password.")


def _organisation(db: Session, ref: str) -> Organisation:
    query = select(Organisation).where(
        (Organisation.ods_code == ref) | (Organisation.name == ref)
        | (Organisation.charity_number == ref)
    )
    organisation = db.exec(query).first()
    if organisation is None:
        raise click.BadParameter(f"no organisation {ref!r} (use an ODS code, charity number or name)")
    return organisation


@click.command("create-user")
@click.option("--email", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--organisation", required=True, help="ODS code, charity number or name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--team", default=None, help="team name in that organisation")
@click.password_option()
def create_user(email, display_name, organisation, role, team, password) -> None:
    """Create a local account with one membership."""
    with Session(engine()) as db:
        org = _organisation(db, organisation)
        team_row = None
        if team:
            team_row = db.exec(select(Team).where(Team.organisation_id == org.id,
                                                  Team.name == team)).first()
            if team_row is None:
                raise click.BadParameter(f"no team {team!r} in that organisation")
        email = email.strip().lower()
        user = db.exec(select(User).where(User.email == email)).first()
        if user is None:
            user = User(email=email, display_name=display_name,
                        password_hash=hash_password(password))
            db.add(user)
            db.flush()
        db.add(Membership(user_id=user.id, organisation_id=org.id,
                          team_id=team_row.id if team_row else None, role=role))
        db.commit()
        click.echo(f"user {user.id} has role {role}")


@click.command("create-client")
@click.option("--name", required=True)
@click.option("--organisation", required=True, help="ODS code, charity number or name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), required=True)
def create_client(name, organisation, scopes) -> None:
    """Create an API client; its secret is printed once."""
    with Session(engine()) as db:
        org = _organisation(db, organisation)
        client_id = "sd-" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        db.add(ApiClient(client_id=client_id, name=name, organisation_id=org.id,
                         secret_hash=hash_password(secret), scopes=" ".join(scopes)))
        db.commit()
    click.echo(f"client_id: {client_id}\nclient_secret: {secret}  (shown once)")


def init_app(app: Flask) -> None:
    app.cli.add_command(db_cli)
    for command in (demo_data, create_user, create_client):
        app.cli.add_command(command)
    from service.jobs.cli import sweep_command, worker_command  # flask sweep, flask worker

    app.cli.add_command(sweep_command)
    app.cli.add_command(worker_command)
