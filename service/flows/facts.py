"""Keep each sent referral's flow row (models.flows.ReferralFlow) and the monthly and daily
counts (FlowMonth, FlowDay) in step with the referrals, off the request path.

A change that moves a referral's figures marks it (`Referral.flows_stale`) in its own
transaction, at no extra cost on the hot path: the status change's conditional UPDATE sets the
mark (service.referrals.operations); the first attended contact's UPDATE sets it; an edit of
the person's borough, sex, ethnic category or date of birth marks their sent referrals; the
`on_status_change` listener marks any status change that came another way (step-up holds).

`refresh_stale_flows` rewrites the marked referrals' rows and clears the marks, locking them in
id order (PostgreSQL; a change racing it waits, and marks the referral again after). It runs:
- in `flask worker`, after each outbox batch, so few marks wait at any time;
- in the flows report, on the primary before it reads the counts, so the report is always
  exact: it shows every committed change, however recently made.

Rows are rewritten from the referral's current state (`refresh_flows`), so a refresh is always
safe to repeat; a referral that was never sent has no row. The counts move with the rows: the
cells of the old rows are taken away and those of the new rows added. The net changes wait in
the session (``db.info``) until its commit, where a ``before_commit`` hook applies them as one
upsert per table in key order (so two refreshes lock shared counts in the same order), and
counts that reach zero are deleted; a rollback drops them (and the marks stay); a read of the
counts through the session applies them first. `rebuild_flow_counts` recounts them all from the
rows in SQL (after a bulk load, or to repair); `cells_sql` is the same expansion as
models.flows.flow_cells.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from models import Contact, FlowDay, FlowMonth, Person, Referral, ReferralEvent, ReferralFlow, Team
from models.flows import ACCEPTED_OUTCOMES, EQUALITY_FIELDS, FlowInputs, flow_cells, flow_values

PERSON_FIELDS = frozenset({"borough", "sex", "ethnic_category", "date_of_birth"})
_CHUNK = 500


def _rows(db: Session, ids: list[int]) -> list[dict]:
    """The new flow rows of these referrals, locking the referrals first (PostgreSQL, in id
    order): a contact or person edit racing a status change of the same referral then waits
    and reads the other's committed state (re-read into the session's objects), not a stale
    one. The first attended contact is read in the same statement (a contact writer has
    already taken the referral's lock, or committed, before it refreshes)."""
    first_attended = (
        select(sa.func.min(Contact.happened_at))
        .where(Contact.referral_id == Referral.id, Contact.outcome == "attended")
        .correlate(Referral).scalar_subquery())
    found = db.exec(
        select(Referral, Person, Team.organisation_id, first_attended)
        .join(Person, Person.id == Referral.person_id)
        .join(Team, Team.id == Referral.referring_team_id)
        .where(Referral.id.in_(ids), Referral.sent_at.is_not(None))
        .order_by(Referral.id)
        .with_for_update(of=Referral)
        .execution_options(populate_existing=True)
    ).all()
    rows = []
    for referral, person, referring_organisation_id, first_attended_at in found:
        inputs = FlowInputs(
            status=referral.status, reason_code=referral.reason_code,
            waitlist=referral.waitlist, sent_at=referral.sent_at,
            decided_at=referral.decided_at, first_attended_at=first_attended_at,
            borough=person.borough, sex=person.sex, ethnic_category=person.ethnic_category,
            date_of_birth=person.date_of_birth)
        rows.append({
            "referral_id": referral.id, "person_id": referral.person_id,
            "referring_team_id": referral.referring_team_id,
            "referring_organisation_id": referring_organisation_id,
            "offer_id": referral.offer_id,
            "receiving_organisation_id": referral.receiving_organisation_id,
            **flow_values(inputs),
        })
    return rows


_TAIL = ("referring_team_id", "offer_id", "measure", "a", "b")


def _upsert(db: Session, model, period: str, changes: list[dict]) -> None:
    """Add each change's n to its count (inserting it if new), then drop counts now zero."""
    table = model.__table__
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    upsert = insert(table)
    counts = db.exec(upsert.on_conflict_do_update(index_elements=[period, *_TAIL],
                                                  set_={"n": table.c.n + upsert.excluded.n})
                     .returning(table.c.n), params=changes).all()
    if len(counts) == len(changes) and all(n for (n,) in counts):
        return  # no count reached zero
    touched = sorted({(c[period], c["referring_team_id"], c["offer_id"]) for c in changes})
    db.exec(sa.delete(model).where(
        table.c.n == 0,
        sa.tuple_(table.c[period], table.c.referring_team_id, table.c.offer_id).in_(touched))
        .execution_options(synchronize_session=False))


_PENDING = "flows.count_deltas"


def _add_deltas(db: Session, old_cells: list[tuple], new_cells: list[tuple]) -> None:
    """Take the old rows' cells away and add the new rows' (keyed by day, see `_cells`;
    months are summed from the days when applied), into the transaction's pending count
    changes."""
    pending: dict[tuple, int] = db.info.setdefault(_PENDING, {})
    for cells, sign in ((old_cells, -1), (new_cells, 1)):
        for key in cells:
            n = pending.get(key, 0) + sign
            if n:
                pending[key] = n
            else:
                pending.pop(key, None)


def apply_pending_counts(db: Session) -> None:
    """Move the monthly and daily counts by the transaction's pending changes: one upsert of
    the net changes per table, in key order (so two transactions lock shared counts in the
    same order). Runs just before the commit (and before the session reads the counts), so
    the shared count rows are locked only for the commit's last moments."""
    by_day = db.info.pop(_PENDING, None)
    if not by_day:
        return
    by_month: dict[tuple, int] = {}
    for (_day, month, *tail), n in by_day.items():
        by_month[(month, *tail)] = by_month.get((month, *tail), 0) + n
    months = [dict(zip(("sent_month", *_TAIL), key, strict=True), n=n)
              for key, n in sorted(by_month.items()) if n]
    days = [dict(zip(("sent_on", "sent_month", *_TAIL), key, strict=True), n=n)
            for key, n in sorted(by_day.items()) if n]
    if months:
        _upsert(db, FlowMonth, "sent_month", months)
    if days:
        _upsert(db, FlowDay, "sent_on", days)


def discard_pending_counts(db: Session) -> None:
    db.info.pop(_PENDING, None)


@sa.event.listens_for(OrmSession, "before_commit")
def _apply_before_commit(session: OrmSession) -> None:
    apply_pending_counts(session)


@sa.event.listens_for(OrmSession, "after_transaction_end")
def _discard_after_rollback(session: OrmSession, transaction) -> None:
    # A commit has already applied them; whatever is left belongs to a rolled-back
    # transaction (the outermost one; a savepoint's end changes nothing).
    if transaction.parent is None:
        discard_pending_counts(session)


_COUNT_TABLES = frozenset({FlowMonth.__table__, FlowDay.__table__})


@sa.event.listens_for(OrmSession, "do_orm_execute")
def _apply_before_reading_counts(state) -> None:
    """A session that reads the counts it has moved sees them moved."""
    if _PENDING in state.session.info and state.is_select and any(
            mapper.local_table in _COUNT_TABLES for mapper in state.all_mappers):
        apply_pending_counts(state.session)


_CLEAR_MARKS = (sa.update(Referral.__table__)
                .where(Referral.__table__.c.id.in_(sa.bindparam("ids", expanding=True)),
                       Referral.__table__.c.flows_stale)
                .values(flows_stale=False))


def refresh_flows(db: Session, referral_ids: Iterable[int]) -> None:
    """Rewrite the flow rows of these referrals from their current state, clear their marks,
    and move their monthly and daily counts with them (at the commit: apply_pending_counts)."""
    ids = sorted(set(referral_ids))
    table = ReferralFlow.__table__
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        new = _rows(db, chunk)  # locks the referrals before their old rows are read
        db.exec(_CLEAR_MARKS, params={"ids": chunk})
        if len(chunk) == 1:
            # One referral (a refresh that found one marked, a test): read the old row,
            # leave it alone when nothing in it moved, else update it in place.
            old = [dict(r._mapping) for r in db.exec(
                sa.select(table).where(table.c.referral_id == chunk[0])).all()]
            if old == new:
                continue
            if old and new:
                changed = {k: v for k, v in new[0].items() if old[0][k] != v}
                db.exec(sa.update(table).where(table.c.referral_id == chunk[0])
                        .values(**changed))
            elif old:
                db.exec(sa.delete(table).where(table.c.referral_id == chunk[0]))
            else:
                db.exec(sa.insert(table), params=new)
        else:
            # Many: read and delete the old rows in one statement, then insert the new ones.
            old = [dict(r._mapping) for r in db.exec(
                sa.delete(table).where(table.c.referral_id.in_(chunk))
                .returning(*table.c)).all()]
            if new:
                db.exec(sa.insert(table), params=new)
        old_cells, new_cells = _cells(old), _cells(new)
        if sorted(old_cells) != sorted(new_cells):
            _add_deltas(db, old_cells, new_cells)


def _cells(rows: list[dict]) -> list[tuple]:
    """The rows' count cells, each keyed (day, month, team, offer, measure, a, b)."""
    return [(row["sent_on"], row["sent_month"], row["referring_team_id"], row["offer_id"],
             *cell) for row in rows for cell in flow_cells(row)]


def _stale_ids(db: Session, limit: int, wait: bool) -> list[int]:
    query = (select(Referral.id).where(Referral.flows_stale).order_by(Referral.id).limit(limit))
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=not wait)
    return list(db.exec(query).all())


def refresh_stale_flows(db: Session, *, wait: bool = False, batch: int = _CHUNK,
                        limit: int | None = None) -> int:
    """Rewrite the rows of the marked referrals (at most `limit`, in batches); how many.

    On PostgreSQL the marked referrals are locked in id order. `wait=False` (the worker) skips
    those another transaction holds: the change or refresh holding them marks or refreshes
    them itself. `wait=True` (the report) waits for them, so it reads every committed change.
    Does not commit: the counts move at the caller's commit, and a rollback keeps the marks."""
    done = 0
    while limit is None or done < limit:
        size = batch if limit is None else min(batch, limit - done)
        ids = _stale_ids(db, size, wait)
        if not ids:
            break
        refresh_flows(db, ids)
        done += len(ids)
        if len(ids) < size:
            break
    return done


def mark_person_stale(db: Session, person_id: int) -> None:
    """After an edit of the person: their sent referrals' equality fields and age bands."""
    db.exec(sa.update(Referral)
            .where(Referral.person_id == person_id, Referral.sent_at.is_not(None),
                   Referral.flows_stale.is_(False))
            .values(flows_stale=True)
            .execution_options(synchronize_session=False))


def refresh_all_flows(db: Session) -> None:
    """Every sent referral's row (demo data, or after loading referrals in bulk)."""
    refresh_flows(db, db.exec(select(Referral.id).where(Referral.sent_at.is_not(None))).all())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def cells_sql(dialect: str, where: str, extra: str = "") -> str:
    """SQL: the FlowMonth cells of the flow rows ``f`` matching `where`, one row per cell,
    with the flow row's columns named in `extra` (e.g. ", f.sent_on") carried along."""
    text = "TEXT" if dialect == "sqlite" else "VARCHAR"
    accepted = _in("f.outcome", ACCEPTED_OUTCOMES)
    target = f"NOT {_in('f.outcome', ('awaiting', 'withdrawn'))}"
    head = "SELECT f.sent_month, f.referring_team_id, f.offer_id"
    parts = [
        f"{head}, 'outcome' AS measure, f.outcome AS a, COALESCE(f.reason, '') AS b{extra} "
        f"FROM referral_flow f WHERE {where}",
        f"{head}, 'accepted', CASE WHEN f.contacted THEN 'contacted' ELSE 'not-contacted' END, "
        f"CASE WHEN f.waitlist THEN 'waitlist' ELSE 'no-waitlist' END{extra} "
        f"FROM referral_flow f WHERE ({where}) AND {accepted}",
        f"{head}, 'decision_days', COALESCE(CAST(f.decision_days AS {text}), ''), "
        f"CASE WHEN {target} THEN 'target' ELSE '' END{extra} "
        f"FROM referral_flow f WHERE ({where}) AND (f.decision_days IS NOT NULL OR {target})",
        f"{head}, 'contact_days', CAST(f.contact_days AS {text}), ''{extra} "
        f"FROM referral_flow f WHERE ({where}) AND f.contact_days IS NOT NULL",
    ]
    decision = f"CASE WHEN {accepted} THEN 'accepted' ELSE 'not-accepted' END"
    parts += [f"{head}, '{field}', f.{field}, {decision}{extra} FROM referral_flow f "
              f"WHERE {where}" for field in EQUALITY_FIELDS]
    return "\nUNION ALL ".join(parts)


def rebuild_flow_counts(db: Session) -> None:
    """Recount every monthly and daily count from the flow rows, in SQL (the rows already
    hold the transaction's pending count changes, so they are dropped)."""
    discard_pending_counts(db)
    dialect = db.get_bind().dialect.name
    cells = cells_sql(dialect, "1 = 1", ", f.sent_on")
    tail = "referring_team_id, offer_id, measure, a, b"
    for model, key, extra in ((FlowMonth, "sent_month", ""), (FlowDay, "sent_on", ", sent_month")):
        db.exec(sa.delete(model).execution_options(synchronize_session=False))
        recount = (f"INSERT INTO {model.__tablename__} ({key}, {tail}{extra}, n) "  # noqa: S608 -- constants only
                   f"SELECT {key}, {tail}{extra}, COUNT(*) FROM ({cells}) cells "
                   f"GROUP BY {key}, {tail}{extra}")
        db.exec(sa.text(recount))


_MARK = (sa.update(Referral.__table__)
         .where(Referral.__table__.c.id == sa.bindparam("referral_id"))
         .values(flows_stale=True))


def on_status_change(db: Session, referral: Referral, event: ReferralEvent) -> None:  # noqa: ARG001
    """The STATUS_LISTENERS hook (service.referrals.hooks): mark the referral, unless the
    change's own UPDATE already did (the usual case: no statement)."""
    if not referral.flows_stale:
        db.exec(_MARK, params={"referral_id": referral.id})
        set_committed_value(referral, "flows_stale", True)


def register_listener() -> None:
    from service.referrals.hooks import STATUS_LISTENERS

    if on_status_change not in STATUS_LISTENERS:
        STATUS_LISTENERS.append(on_status_change)
