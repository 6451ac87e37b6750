"""Flask commands: db upgrade, demo-data, create-user, create-client."""

from __future__ import annotations

import secrets

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
def demo_data() -> None:
    """Load the fictional demo alliance (idempotent)."""
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
