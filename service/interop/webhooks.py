"""Webhooks: API clients hear about their organisation's referral status changes (closed loop).

- An API client registers a callback URL (`POST /api/v1/webhooks`); Stepdown generates the
  signing secret and shows it once.
- On every referral status change (`service.referrals.hooks.STATUS_LISTENERS`) one
  `OutboxMessage(channel="webhook")` per matching subscription is written in the change's own
  transaction. Matching: active clients of the referring organisation (a client with a team:
  only that team's referrals) and of the receiving organisation.
- The payload is the referral's FHIR Task (UK Core), minimal: status, statusReason,
  businessStatus, the referral identifier and times; no Patient, nothing personal. The
  receiver reads the full Bundle with `GET /api/v1/referrals/{id}/fhir` (audited).
- The outbox worker delivers it through the `webhook` channel: `POST` with
  `Content-Type: application/fhir+json` and
    - `X-Stepdown-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed by the secret>`
    - `X-Stepdown-Timestamp: <Unix seconds at delivery>`; the body's signed
      `meta.lastUpdated` is the time of the change, so receivers can refuse stale replays
    - `X-Stepdown-Delivery: <message id>` (the same on every retry: deduplicate on it)
    - `X-Stepdown-Event: referral.<action>`
  Any 2xx is success; anything else is retried with the worker's exponential back-off
  (30 s doubling to 1 h, 10 attempts). 410 Gone switches the subscription off.
- In production callback URLs must be https and must not point at private, loopback or
  link-local addresses (checked when registering and again before each delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
from typing import NamedTuple
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlmodel import Session, select

from models import ApiClient, OutboxMessage, Referral, ReferralEvent, Team, WebhookSubscription
from service import clock
from service.audit import operations as audit
from service.auth.principal import ClientIdentity, Principal
from service.errors import Forbidden, Invalid, NotFound
from service.interop import fhir
from service.jobs.delivery import PermanentFailure, register_channel
from service.jobs.outbox import enqueue
from service.referrals.hooks import NOT_READ, take_read

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Stepdown-Signature"
TIMESTAMP_HEADER = "X-Stepdown-Timestamp"
DELIVERY_HEADER = "X-Stepdown-Delivery"
EVENT_HEADER = "X-Stepdown-Event"
MAX_SUBSCRIPTIONS = 10
TIMEOUT_SECONDS = 10


def sign(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=<hex>` of HMAC-SHA256(secret, body)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), header or "")


# ---- Destinations -------------------------------------------------------------------------


def _production() -> bool:
    return has_app_context() and current_app.config["SETTINGS"].is_production


def check_destination(url: str, *, production: bool) -> None:
    """Raise ValueError unless the URL is an acceptable callback for this environment."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("Enter an http(s) URL")
    if parts.username or parts.password:
        raise ValueError("Do not put credentials in the URL")
    if not production:
        return
    if parts.scheme != "https":
        raise ValueError("Use an https URL")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except socket.gaierror:
        raise ValueError("The host name does not resolve") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise ValueError("The URL must point at a public address")


# ---- Subscriptions (API clients only) -----------------------------------------------------


def _client(actor: Principal) -> ApiClient | ClientIdentity:
    if actor.client is None:
        raise Forbidden("Webhooks are registered by API clients (with a bearer token).")
    return actor.client


def subscription_view(subscription: WebhookSubscription, secret: str | None = None) -> dict:
    view = {"id": subscription.id, "url": subscription.url, "is_active": subscription.is_active,
            "created_at": subscription.created_at}
    if secret is not None:
        view["secret"] = secret
    return view


def create_subscription(db: Session, actor: Principal, url: str) -> dict:
    client = _client(actor)
    try:
        check_destination(url, production=_production())
    except ValueError as exc:
        raise Invalid("The callback URL cannot be used.", errors={"url": [str(exc)]}) from None
    active = db.scalar(sa.select(sa.func.count()).select_from(WebhookSubscription).where(
        WebhookSubscription.api_client_id == client.id, WebhookSubscription.is_active))
    if active >= MAX_SUBSCRIPTIONS:
        raise Invalid("This client has the most webhooks allowed.",
                      errors={"url": [f"Delete one first: at most {MAX_SUBSCRIPTIONS}"]})
    secret = secrets.token_urlsafe(32)
    subscription = WebhookSubscription(api_client_id=client.id, url=url, secret=secret,
                                       is_active=True, created_at=clock.now())
    db.add(subscription)
    db.flush()
    audit.record(db, actor, "create", "webhook", subscription.id)
    return subscription_view(subscription, secret)


def list_subscriptions(db: Session, actor: Principal) -> list[dict]:
    client = _client(actor)
    rows = db.exec(select(WebhookSubscription).where(
        WebhookSubscription.api_client_id == client.id, WebhookSubscription.is_active)
        .order_by(WebhookSubscription.id)).all()
    return [subscription_view(row) for row in rows]


def delete_subscription(db: Session, actor: Principal, subscription_id: int) -> None:
    """Switch it off; messages still waiting for it are dropped."""
    client = _client(actor)
    subscription = db.get(WebhookSubscription, subscription_id)
    if subscription is None or subscription.api_client_id != client.id \
            or not subscription.is_active:
        raise NotFound("No such webhook.")
    subscription.is_active = False
    db.add(subscription)
    db.execute(sa.update(OutboxMessage)
               .where(OutboxMessage.webhook_id == subscription.id,
                      OutboxMessage.status == "pending")
               .values(status="failed", last_error="webhook deleted"))
    db.flush()
    audit.record(db, actor, "delete", "webhook", subscription.id)


# ---- On every status change ---------------------------------------------------------------


def _base_url() -> str:
    if has_app_context():
        return current_app.config["SETTINGS"].BASE_URL
    return "http://127.0.0.1:5000"


def task_payload(referral: Referral, event: ReferralEvent) -> dict:
    task = fhir.task_resource(None, _base_url(), referral=referral, minimal=True)
    task.meta.lastUpdated = event.at
    return json.loads(task.json())


def _subscriptions_query(referring_team: sa.ColumnElement,
                         receiving_organisation: sa.ColumnElement) -> sa.Select:
    referring_org = sa.select(Team.organisation_id).where(Team.id == referring_team).scalar_subquery()
    referring = sa.and_(ApiClient.organisation_id == referring_org,
                        sa.or_(ApiClient.team_id.is_(None), ApiClient.team_id == referring_team))
    receiving = ApiClient.organisation_id == receiving_organisation
    return (sa.select(WebhookSubscription.id, WebhookSubscription.url)
            .join(ApiClient, ApiClient.id == WebhookSubscription.api_client_id)
            .where(WebhookSubscription.is_active, ApiClient.is_active, sa.or_(referring, receiving)))


# Built once: it runs on every referral status change, whether or not anyone subscribed.
_SUBSCRIPTIONS = _subscriptions_query(sa.bindparam("referring_team_id"),
                                      sa.bindparam("receiving_organisation_id")
                                      ).order_by(WebhookSubscription.id)
_READ_NAME = "webhook_subscriptions"


def _subscriptions_read(referring_team: sa.ColumnElement,
                        receiving_organisation: sa.ColumnElement) -> sa.ScalarSelect:
    """For the change's own statement (PostgreSQL): the subscriptions as a JSON array of
    [id, url] pairs, in id order ([] when nobody subscribed)."""
    found = _subscriptions_query(referring_team, receiving_organisation).subquery()
    pairs = sa.func.json_agg(aggregate_order_by(sa.func.json_build_array(found.c.id, found.c.url),
                                                found.c.id))
    return sa.select(sa.func.coalesce(pairs, sa.text("'[]'::json"))).scalar_subquery()


class Subscription(NamedTuple):
    id: int
    url: str


def subscriptions_for(db: Session, referral: Referral) -> list[Subscription]:
    """Active subscriptions (id, url) of active clients of the referring team's or receiving
    organisation.

    Read by the change's own statement on PostgreSQL (service.referrals.hooks.STATUS_READS);
    else one query (Core: nothing is loaded into the session), the referring team's
    organisation a subquery of it.
    """
    read = take_read(db, _READ_NAME, referral.id)
    if read is not NOT_READ:
        return [Subscription(*pair) for pair in read]
    db.flush()  # as autoflush would, before a statement on the session's connection
    return [Subscription(*row) for row in db.connection().execute(_SUBSCRIPTIONS, {
        "referring_team_id": referral.referring_team_id,
        "receiving_organisation_id": referral.receiving_organisation_id})]


def on_status_change(db: Session, referral: Referral, event: ReferralEvent) -> None:
    """The STATUS_LISTENERS hook: one outbox row per subscription, in the change's transaction."""
    subscriptions = subscriptions_for(db, referral)
    if not subscriptions:
        return
    payload = task_payload(referral, event)
    for subscription in subscriptions:
        enqueue(db, channel="webhook", topic=f"referral.{event.action}",
                recipient=subscription.url, payload=payload, webhook_id=subscription.id)


# ---- Delivery (the outbox worker's `webhook` channel) -------------------------------------


def _subscription(webhook_id: int | None) -> WebhookSubscription | None:
    """The subscription if it and its API client are still active."""
    from service.db import engine

    if webhook_id is None:
        return None
    with Session(engine()) as db:
        return db.exec(select(WebhookSubscription)
                       .join(ApiClient, ApiClient.id == WebhookSubscription.api_client_id)
                       .where(WebhookSubscription.id == webhook_id,
                              WebhookSubscription.is_active, ApiClient.is_active)).first()


def _switch_off(webhook_id: int) -> None:
    from service.db import engine

    with Session(engine()) as db:
        db.execute(sa.update(WebhookSubscription).where(WebhookSubscription.id == webhook_id)
                   .values(is_active=False))
        db.commit()


@register_channel("webhook")
def deliver_webhook(message: OutboxMessage, settings) -> None:
    subscription = _subscription(message.webhook_id)
    if subscription is None:
        raise PermanentFailure("the webhook or its API client was switched off")
    try:
        check_destination(subscription.url, production=settings.is_production)
    except ValueError as exc:
        raise PermanentFailure(f"callback URL refused: {exc}") from None
    body = message.payload.encode()
    headers = {
        "Content-Type": fhir.FHIR_JSON,
        "User-Agent": "Stepdown-Webhooks/1",
        SIGNATURE_HEADER: sign(subscription.secret, body),
        TIMESTAMP_HEADER: str(int(clock.now().timestamp())),
        DELIVERY_HEADER: str(message.id),
        EVENT_HEADER: message.topic,
    }
    response = requests.post(subscription.url, data=body, headers=headers,
                             timeout=TIMEOUT_SECONDS, allow_redirects=False)
    if response.status_code == 410:
        _switch_off(subscription.id)
        raise PermanentFailure("the receiver answered 410 Gone: webhook switched off")
    if not 200 <= response.status_code < 300:
        raise RuntimeError(f"the receiver answered HTTP {response.status_code}")


def register_listener() -> None:
    """Hook into referral status changes (once, however many apps are created)."""
    from service.referrals.hooks import STATUS_LISTENERS, STATUS_READS

    if on_status_change not in STATUS_LISTENERS:
        STATUS_LISTENERS.append(on_status_change)
    STATUS_READS[_READ_NAME] = _subscriptions_read
