"""One person's step-down story as table rows: person, needs, consents, journey, MDT,
referrals walked through the lifecycle with an event per step, contacts, notes and flags.

Each referral is simulated forward in time from its creation (send, decision within about the
offer's response target, start, sessions, hold, end) and stops where the simulation passes
`now`, so its status is whatever state it had reached: recent referrals are still
`requested` or `accepted`, older ones have ended. Every field the app derives is derived here
from the same steps: status, reason, dates, `version` (1 + one per action and assignment),
`first_contact_at` (earliest attended contact), the journey's activation, discharge, safety
net, step-up and finish, and the flags the app raises on the way (responsibility gap,
declined needing specialist support, concerns, missed contacts, consent withdrawn, step-up).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

import nhs_number

from models.flows import FlowInputs, flow_values
from models.referral_lifecycle import ACTIONS, OPEN_STATES, TERMINAL_STATES
from models.working_days import acknowledgement_due, is_working_day, working_days_between
from service.demo_scale.alliance import DISTRICTS, ScaledAlliance
from service.flags.operations import TRIGGER_LABELS

PERSON = ("id", "nhs_number", "given_name", "family_name", "preferred_name", "pronouns",
          "date_of_birth", "postcode_district", "borough", "communication_needs", "sex",
          "ethnic_category", "about_strengths", "about_what_matters", "about_what_helps",
          "about_updated_by_user_id", "about_updated_at", "created_by_organisation_id",
          "version", "created_at", "updated_at")
PERSON_NEED = ("person_id", "responsibility_code")
CONSENT = ("person_id", "organisation_id", "purpose", "lawful_basis", "condition", "method",
           "recorded_by_user_id", "given_at", "expires_at", "withdrawn_at",
           "withdrawn_by_user_id", "withdrawal_reason", "created_at")
JOURNEY = ("id", "person_id", "team_id", "statutory_contact_user_id", "status", "discharged_on",
           "safety_net_days", "safety_net_ends", "review_due", "stepped_up_at",
           "step_up_trigger", "step_up_flag_id", "step_up_note", "created_by_user_id", "version",
           "created_at", "updated_at")
JOURNEY_MEMBER = ("journey_id", "user_id", "role")
REFERRAL = ("id", "journey_id", "person_id", "offer_id", "referring_team_id",
            "receiving_organisation_id", "status", "reason_code", "reason_text", "waitlist",
            "expected_start", "assigned_to_user_id", "about_me", "goals", "relapse_signs",
            "crisis_plan", "risk_summary", "contact_in_hours", "contact_out_of_hours", "version",
            "created_by_user_id", "created_at", "sent_at", "decided_at", "started_at",
            "ended_at", "first_contact_at", "updated_at")
REFERRAL_FLOW = ("referral_id", "person_id", "referring_team_id", "referring_organisation_id",
                 "offer_id", "receiving_organisation_id", "sent_on", "sent_month", "outcome",
                 "reason", "waitlist", "contacted", "decision_days", "contact_days", "borough",
                 "sex", "ethnic_category", "age_band")
REFERRAL_EVENT = ("referral_id", "action", "from_status", "to_status", "reason_code",
                  "actor_user_id", "at")
CONTACT = ("referral_id", "outcome", "happened_at", "note", "recorded_by_user_id", "created_at")
NOTE = ("journey_id", "referral_id", "author_user_id", "author_role", "author_organisation_id",
        "kind", "text", "created_at")
FLAG = ("id", "person_id", "journey_id", "referral_id", "trigger", "category", "urgency",
        "dedupe_key", "description", "raised_by_user_id", "raised_by_organisation_id",
        "routed_team_id", "also_routed_team_id", "status", "raised_at", "acknowledgement_due",
        "acknowledged_at", "acknowledged_by_user_id", "escalated_at", "resolved_at",
        "resolved_by_user_id", "outcome", "resolution_note", "version")
FLAG_EVENT = ("flag_id", "kind", "actor_user_id", "note", "at")

# In foreign-key order: a chunk is written table by table in this order.
TABLES = {"person": PERSON, "person_need": PERSON_NEED, "consent": CONSENT, "journey": JOURNEY,
          "journey_member": JOURNEY_MEMBER, "referral": REFERRAL, "referral_flow": REFERRAL_FLOW,
          "referral_event": REFERRAL_EVENT, "contact": CONTACT, "note": NOTE, "flag": FLAG,
          "flag_event": FLAG_EVENT}
# Tables written with explicit ids (their sequences move afterwards on PostgreSQL).
EXPLICIT_IDS = ("person", "journey", "referral", "flag")

GIVEN = ["Aisha", "Ben", "Chloe", "Daniel", "Efua", "Fatima", "George", "Hannah", "Imran",
         "Jade", "Kofi", "Leah", "Mohammed", "Niamh", "Oliver", "Precious", "Rhys", "Sana",
         "Tariq", "Una", "Viktor", "Wei", "Yasmin", "Zoe", "Adebayo", "Bronwen", "Carlos",
         "Deepa", "Emre", "Grace", "Hamza", "Ioana", "Joseph", "Kasia", "Luis", "Maryam"]
FAMILY = ["Adeyemi", "Brown", "Chowdhury", "Davies", "Evans", "Fernandes", "Green", "Hassan",
          "Ibrahim", "Jones", "Kowalski", "Lewis", "Mensah", "Nguyen", "O'Brien", "Patel",
          "Quinn", "Rahman", "Smith", "Taylor", "Uddin", "Vasquez", "Williams", "Yilmaz",
          "Begum", "Clarke", "Okoro", "Murphy", "Santos", "Ali", "Kaur", "Novak"]
PRONOUNS = ["she/her", "he/him", "they/them", None]
COMMUNICATION = ["Prefers text messages to phone calls.", "Needs an interpreter (Bengali).",
                 "Large print, please.", "Hearing aids: face me when you talk.",
                 "Dyslexic: talk things through rather than send letters."]
STRENGTHS = ["I'm a good cook and I like looking after people.", "I can fix most things.",
             "I'm organised and good with numbers.", "Music keeps me going; I play guitar.",
             "I'm a good listener and people trust me.", "I love gardening and being outside."]
MATTERS = ["My children, and keeping my flat.", "Getting back to work part-time.",
           "Seeing my friends again.", "Not going back into hospital.",
           "My faith community.", "Sorting out money worries."]
HELPS = ["Text me first before you ring.", "Meeting somewhere quiet, not a clinic.",
         "Plans written down.", "The same worker each time.", "Walking and talking outside.",
         "Plenty of notice if plans change."]
GOALS = ["Rebuild a weekly routine and meet people.", "Find paid work and keep my tenancy.",
         "Stay well at home and stay connected.", "Sort out benefits and debts.",
         "Get back to a hobby with other people."]
RELAPSE = ["Stops replying to messages; stays in bed.", "Poor sleep, more voices at night.",
           "Drinks more and misses appointments.", "Withdraws from friends."]
CRISIS = ["Crisis line first; a family member knows the plan.",
          "CMHT duty line in hours, crisis line out of hours.", "Written crisis plan at home."]
RISK = ["Low risk.", "Low risk; sensitive to sudden changes.", "No current risk to others.",
        "Past self-harm when very unwell; none in the last year."]
OUT_OF_HOURS = "Crisis line 0800 000 0000 (24 hours)"
CONSENT_PURPOSE = "Sharing my details and About me so they can offer me support"
NEEDS = ["peer-support", "social-connection", "housing-advice", "employment-support",
         "benefits-advice"]
STATUTORY_ONLY_NEEDS = ["medication-management", "risk-assessment"]
SEXES = (["female"] * 46 + ["male"] * 46 + ["other"] * 2 + ["not-stated"] * 3
         + [None] * 3)
ETHNIC = list("AAAAAAABCDEFGHHJKLMNNPPRSZ") + ["99", None, None]
DECLINE = (["no-capacity"] * 30 + ["not-eligible"] * 20 + ["needs-specialist-support"] * 10
           + ["person-declined"] * 15 + ["could-not-contact"] * 15
           + ["returned-with-advice"] * 5 + ["other"] * 5)
HOLD = ["person-unwell", "person-unwell", "person-request", "awaiting-information", "other"]
FAIL = ["could-not-engage", "could-not-engage", "could-not-contact", "person-declined"]
CATEGORIES = (["deterioration"] * 30 + ["risk-to-self"] * 15 + ["risk-to-others"] * 5
              + ["safeguarding"] * 10 + ["physical-health"] * 10 + ["medication"] * 10
              + ["disengagement"] * 20)
URGENCY = ["routine"] * 60 + ["urgent"] * 32 + ["emergency"] * 8
OUTCOMES = {
    "concern": ["advice-given", "advice-given", "re-referred", "no-action"],
    "responsibility-gap": ["no-action", "advice-given"],
    "declined-needs-specialist": ["re-referred", "advice-given"],
    "missed-contacts": ["advice-given", "no-action", "re-referred"],
    "consent-withdrawn": ["re-referred", "no-action"],
}
ACK_MINUTES = {"emergency": (5, 75), "urgent": (20, 420), "routine": (60, 4800)}
REFERRER_ACTIONS = ("create", "send", "cancel")


class FastRandom(random.Random):
    """random.Random with choice/randint/randrange done by one random() call each: about three
    times faster than the unbiased originals, which matters a million referrals in, and the
    bias (under 2**-40) does not. Deterministic for a seed like its parent."""

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))


REFERRALS_PER_PERSON = (1,) * 55 + (2,) * 30 + (3,) * 15
ENDINGS = ("complete",) * 75 + ("fail",) * 20 + ("cancel",) * 5
SESSIONS = ("attended",) * 80 + ("did-not-attend",) * 12 + ("could-not-contact",) * 8


def nhs_numbers(start: int = 0):
    """Unique, Modulus 11 valid NHS numbers in the synthetic range (900 000 000x-998 999 999x,
    never issued; the demo people use 999...). A stride permutes the 9-digit stems so that
    neighbours do not look sequential; stems whose check digit would be 10 are skipped."""
    counter = start
    while True:
        stem = str(900_000_000 + (counter * 7_919) % 99_000_000)
        counter += 1
        check = nhs_number.calculate_checksum(stem)
        if check != 10:
            yield stem + str(check)


class WorkingDayIndex:
    """working_days_between by lookup: working days counted from an origin, per date, so the
    flow row of a million referrals costs a subtraction instead of a walk over the calendar."""

    def __init__(self, first: date, last: date) -> None:
        self.first, self.last = first, last
        self.count: dict[date, int] = {}
        total, day = 0, first
        while day <= last:
            total += is_working_day(day)
            self.count[day] = total
            day += timedelta(days=1)

    def __call__(self, a: date, b: date) -> int:
        if self.first <= a <= self.last and self.first <= b <= self.last:
            return self.count[b] - self.count[a]
        return working_days_between(a, b)


class StoryTeller:
    """Generates people with their stories, chunk by chunk, with explicit ids from `first`."""

    def __init__(self, alliance: ScaledAlliance, rnd: random.Random, now: datetime,
                 first: dict[str, int]) -> None:
        self.alliance = alliance
        self.rnd = rnd
        self.now = now.astimezone(UTC).replace(tzinfo=None)  # naive UTC, as stored
        self.today = self.now.date()
        self.next_id = dict(first)
        self.numbers = nhs_numbers()
        self.last_resolved: datetime | None = None  # of the last flag made (None: still open)
        self.days_between = WorkingDayIndex(self.today - timedelta(days=800),
                                            self.today + timedelta(days=400))

    # --- time --------------------------------------------------------------------------------

    def _after(self, previous: datetime, low_days: float, high_days: float) -> datetime:
        """A working-hours moment some days after `previous` (never before it)."""
        r = self.rnd.random
        t = previous + timedelta(days=low_days + (high_days - low_days) * r())
        weekday = t.weekday()
        if weekday >= 5:
            t += timedelta(days=7 - weekday)
        t = datetime(t.year, t.month, t.day, 9) + timedelta(seconds=int(r() * 28_800))
        if t <= previous:
            t = previous + timedelta(seconds=300 + int(r() * 10_500))
        return t

    def _id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    # --- one person ----------------------------------------------------------------------------

    def person(self, rows: dict[str, list], remaining: int) -> int:
        """Append one person's rows; return how many referrals they have (1-3, ≤ remaining)."""
        rnd, now = self.rnd, self.now
        trust = rnd.choice(self.alliance.trusts)
        team = rnd.choice(trust.cmhts)
        coordinator = rnd.choice(team.coordinators) if team.coordinators else None
        peer = rnd.choice(team.peers) if team.peers and rnd.random() < 0.4 else None
        start = now - timedelta(days=0.5 + 730 * rnd.random() ** 1.2)
        person_id, journey_id = self._id("person"), self._id("journey")
        about = rnd.random() < 0.7
        rows["person"].append((
            person_id, next(self.numbers), rnd.choice(GIVEN), rnd.choice(FAMILY), None,
            rnd.choice(PRONOUNS), date(now.year - rnd.randint(18, 80), rnd.randint(1, 12),
                                       rnd.randint(1, 28)),
            rnd.choice(DISTRICTS), trust.borough or None,
            rnd.choice(COMMUNICATION) if rnd.random() < 0.15 else None, rnd.choice(SEXES),
            rnd.choice(ETHNIC), *((rnd.choice(STRENGTHS), rnd.choice(MATTERS), rnd.choice(HELPS))
                                  if about else (None, None, None)),
            coordinator if about else None, start if about else None, trust.id, 1, start, start))
        needs = rnd.sample(NEEDS, rnd.randint(1, 3))
        gap = rnd.random() < 0.1
        if gap:
            needs.append(rnd.choice(STATUTORY_ONLY_NEEDS))
        rows["person_need"].extend((person_id, code) for code in needs)
        about_me = (f"My strengths\n{rows['person'][-1][12]}\n\nWhat matters to me\n"
                    f"{rows['person'][-1][13]}\n\nWhat helps me\n{rows['person'][-1][14]}"
                    if about else None)

        count = min(remaining, rnd.choice(REFERRALS_PER_PERSON),
                    len(self.alliance.vcse))
        local = trust.local_vcse
        pool = local if len(local) >= count and rnd.random() < 0.8 else self.alliance.vcse
        journey = {"id": journey_id, "person_id": person_id, "person": rows["person"][-1],
                   "team": team, "trust": trust,
                   "coordinator": coordinator, "peer": peer, "start": start, "accepts": [],
                   "withdrawn": [], "members": {}}
        if coordinator:
            journey["members"][coordinator] = "care-coordinator"
        if peer:
            journey["members"][peer] = "peer-worker"
        created = start
        referral_rows_at = len(rows["referral"])
        for index, org in enumerate(rnd.sample(pool, count)):
            created = start if index == 0 else created + timedelta(days=rnd.uniform(2, 40))
            created = min(created, now - timedelta(minutes=rnd.randrange(60, 720)))
            created = max(created, start)
            self._referral(rows, journey, org, created, about_me, gap)
        self._journey(rows, journey, rows["referral"][referral_rows_at:])
        return count

    # --- referrals -----------------------------------------------------------------------------

    def _story(self, created: datetime, target_days: int) -> tuple[list, list, date | None]:
        """The referral's steps [(action, from, to, reason, at)], contacts [(outcome, at)] and
        the expected start of a waitlisted acceptance."""
        rnd, now = self.rnd, self.now
        steps: list[tuple] = [("create", None, "draft", None, created)]

        def step(action: str, reason: str | None, at: datetime) -> None:
            steps.append((action, steps[-1][2], ACTIONS[action][1], reason, at))

        if rnd.random() < 0.03:  # a draft that was never sent: old ones were cancelled
            t = self._after(created, 1, 10)
            if t <= now and (now - created).days > 30:
                step("cancel", rnd.choice(["sent-in-error", "no-longer-needed"]), t)
            return steps, [], None
        sent = self._after(created, 0, 2)
        if sent > now:
            return steps, [], None
        step("send", None, sent)
        if rnd.random() < 0.03:  # withdrawn by the referrer before a decision
            t = self._after(sent, 0.5, 10)
            if t <= now:
                step("cancel", rnd.choice(["no-longer-needed", "person-declined", "other"]), t)
            return steps, [], None
        decided = self._after(sent, 0.1, target_days * 1.5 + 1)
        if decided > now:
            return steps, [], None
        if rnd.random() < 0.18:
            step("decline", rnd.choice(DECLINE), decided)
            return steps, [], None
        step("accept", None, decided)
        expected = None
        if rnd.random() < 0.12:
            expected = (decided + timedelta(weeks=rnd.randint(2, 8))).date()
            begin = self._after(datetime.combine(expected, time(9)), 0, 3)
        else:
            begin = self._after(decided, 1, 12)
        contacts: list[tuple[str, datetime]] = []
        if rnd.random() < 0.03:
            t = self._after(decided, 1, 10)
            if t <= now:
                step("cancel", "person-declined", t)
            return steps, contacts, expected
        if begin > now:
            t = self._after(decided, 0.5, 5)
            if rnd.random() < 0.3 and t <= now:
                contacts.append(("could-not-contact", t))
            return steps, contacts, expected
        step("start", None, begin)
        end = begin + timedelta(days=rnd.uniform(28, 200))
        hold_at = resume_at = None
        if rnd.random() < 0.15:
            hold_at = self._after(begin, 7, max(8.0, (end - begin).days * 0.6))
            if hold_at <= now and hold_at < end:
                step("hold", rnd.choice(HOLD), hold_at)
                if rnd.random() < 0.2:
                    t = self._after(hold_at, 14, 60)
                    if t <= now:
                        step("fail", rnd.choice(FAIL), t)
                else:
                    resume_at = self._after(hold_at, 7, 40)
                    if resume_at <= now:
                        step("resume", None, resume_at)
                        end += resume_at - hold_at
            else:
                hold_at = None
        if steps[-1][2] == "in-progress" and end <= now:
            outcome = rnd.choice(ENDINGS)
            step(outcome, {"fail": rnd.choice(FAIL), "cancel": "no-longer-needed"}.get(outcome),
                 end)
        until = steps[-1][4] if steps[-1][2] in TERMINAL_STATES else now
        t = begin + timedelta(minutes=rnd.randrange(30, 240))  # first meeting on the first day
        outcome = "attended"
        while t <= until and len(contacts) < 6:
            if hold_at is None or t < hold_at or (resume_at is not None and t >= resume_at):
                contacts.append((outcome, t))
            t = self._after(t, 5, 14)
            outcome = rnd.choice(SESSIONS)
        return steps, contacts, expected

    def _referral(self, rows: dict[str, list], journey: dict, org, created: datetime,
                  about_me: str | None, gap: bool) -> None:
        rnd, now = self.rnd, self.now
        offer_id, target = rnd.choice(org.offers)
        steps, contacts, expected = self._story(created, target)
        sent_at = next((s[4] for s in steps if s[0] == "send"), None)
        if sent_at is not None and rnd.random() < 0.01:
            # Consent to this organisation withdrawn while the referral was open: it is
            # cancelled at that moment (and the journey's team gets a flag, below).
            last = steps[-1][2]
            until = steps[-1][4] if last in TERMINAL_STATES else now
            at = sent_at + (until - sent_at) * rnd.random()
            steps = [s for s in steps if s[4] <= at]
            if steps[-1][2] in OPEN_STATES:
                steps.append(("cancel", steps[-1][2], "cancelled", "consent-withdrawn", at))
                contacts = [c for c in contacts if c[1] < at]
                journey["withdrawn"].append((org.id, at))
        referral_id = self._id("referral")
        referrer = journey["coordinator"]
        receiver = rnd.choice(org.workers) if org.workers else None
        by_action = {s[0]: s[4] for s in steps}
        status, reason = steps[-1][2], steps[-1][3]
        decided = by_action.get("accept") or by_action.get("decline")
        assigned = receiver if "accept" in by_action and receiver and rnd.random() < 0.8 else None
        if "accept" in by_action:
            journey["accepts"].append(by_action["accept"])
        if assigned:
            journey["members"].setdefault(assigned, "vcse-worker")
        attended = [at for outcome, at in contacts if outcome == "attended"]
        team = journey["team"]
        rows["referral"].append((
            referral_id, journey["id"], journey["person_id"], offer_id, team.id, org.id, status,
            reason, None, expected is not None and "accept" in by_action,
            expected if "accept" in by_action else None, assigned,
            about_me if sent_at else None, rnd.choice(GOALS), rnd.choice(RELAPSE),
            rnd.choice(CRISIS), rnd.choice(RISK), f"{team.name}: {team.email}", OUT_OF_HOURS,
            len(steps) + (1 if assigned else 0), referrer, created, sent_at, decided,
            by_action.get("start"), steps[-1][4] if status in TERMINAL_STATES else None,
            min(attended) if attended else None, steps[-1][4]))
        if sent_at is not None:
            self._flow(rows, rows["referral"][-1], journey, min(attended) if attended else None)
        rows["referral_event"].extend(
            (referral_id, action, from_status, to_status, code,
             referrer if action in REFERRER_ACTIONS else receiver, at)
            for action, from_status, to_status, code, at in steps)
        rows["contact"].extend(
            (referral_id, outcome, at, None, receiver, min(now, at + timedelta(minutes=30)))
            for outcome, at in contacts)
        ctx = {"journey": journey, "referral_id": referral_id}
        if gap and sent_at:
            self._flag(rows, ctx, "responsibility-gap", "routine", sent_at,
                       description="The receiving organisation does not hold a statutory-only "
                                   "need: the statutory team keeps it.")
        if status == "rejected" and reason == "needs-specialist-support":
            self._flag(rows, ctx, "declined-needs-specialist", "urgent", decided,
                       description="Declined: the person needs specialist support.")
        self._missed_contacts_flag(rows, ctx, contacts, status)
        started = by_action.get("start")
        if started and rnd.random() < 0.07:
            until = steps[-1][4] if status in TERMINAL_STATES else now
            category = rnd.choice(CATEGORIES)
            self._flag(rows, ctx, "concern", rnd.choice(URGENCY),
                       started + (until - started) * rnd.random(), category=category,
                       raised_by=(receiver, org.id),
                       description=f"Concern raised by the VCSE worker: {category}.")
        if started and rnd.random() < 0.2:
            author = journey["peer"] or referrer
            note_at = started + (min(now, steps[-1][4] if status in TERMINAL_STATES else now)
                                 - started) * rnd.random()
            rows["note"].append((
                journey["id"], referral_id, author,
                "peer_worker" if journey["peer"] else "care_coordinator",
                journey["trust"].id, "client-voice" if journey["peer"] else "note",
                "Says the sessions help; wants to keep the same worker.", note_at))

    def _flow(self, rows: dict[str, list], referral: tuple, journey: dict,
              first_attended: datetime | None) -> None:
        """The referral's row of the flows figures (models.flows), as the app keeps it."""
        person = journey["person"]
        values = flow_values(FlowInputs(
            status=referral[6], reason_code=referral[7], waitlist=referral[9],
            sent_at=referral[22], decided_at=referral[23], first_attended_at=first_attended,
            borough=person[8], sex=person[10], ethnic_category=person[11],
            date_of_birth=person[6]), days_between=self.days_between)
        rows["referral_flow"].append((
            referral[0], referral[2], referral[4], journey["trust"].id, referral[3], referral[5],
            *(values[column] for column in REFERRAL_FLOW[6:])))

    def _missed_contacts_flag(self, rows: dict[str, list], ctx: dict, contacts: list,
                              status: str) -> None:
        """As the app does: a missed contact that makes three or more in a row raises a flag,
        unless one is still unresolved (the app re-triggers that one); and if the run is still
        going when that flag is resolved, the next sweep raises another."""
        run, resolved = 0, False  # resolved: False before any flag, None while one is open

        def flag(at: datetime) -> None:
            nonlocal resolved
            self._flag(rows, ctx, "missed-contacts", "routine", at,
                       description="3 contacts in a row did not happen.")
            resolved = self.last_resolved

        for outcome, at in contacts:
            run = 0 if outcome == "attended" else run + 1
            if run >= 3 and (resolved is False or (resolved is not None and resolved <= at)):
                flag(at)
        if (run >= 3 and status in ("accepted", "in-progress") and resolved
                and resolved > contacts[-1][1] and resolved + timedelta(hours=1) <= self.now):
            flag(resolved + timedelta(hours=1))

    # --- the journey ---------------------------------------------------------------------------

    def _journey(self, rows: dict[str, list], journey: dict, referrals: list[tuple]) -> None:
        rnd, now, today = self.rnd, self.now, self.today
        team, trust = journey["team"], journey["trust"]
        start, coordinator = journey["start"], journey["coordinator"]
        status, version, updated = "planned", 1, start
        discharged_on = ends = stepped_at = None
        net_days = 90
        trigger = flag_id = None
        first_accept = min(journey["accepts"]) if journey["accepts"] else None
        if first_accept:
            status, version, updated = "active", 2, first_accept
            if rnd.random() < 0.6:
                discharged = self._after(first_accept, 14, 150)
                if discharged <= now:
                    net_days = rnd.choice((90, 90, 90, 60, 120))
                    discharged_on = discharged.date()
                    ends = discharged_on + timedelta(days=net_days)
                    version, updated = version + 1, discharged
                    if rnd.random() < 0.1:
                        window = (min(datetime.combine(ends, time(17)), now) - discharged)
                        stepped_at = discharged + window * rnd.random()
                        flag_id = self._flag(
                            rows, {"journey": journey, "referral_id": None}, "concern", "urgent",
                            max(discharged, stepped_at - timedelta(hours=rnd.uniform(1, 48))),
                            category="deterioration", resolve=("stepped-up", stepped_at),
                            raised_by=(journey["peer"], trust.id) if journey["peer"] else None,
                            description="Deteriorating: the peer worker asks for a step-up.")
                        trigger = "flag:concern"
                        version, updated = version + 1, stepped_at
                    if ends < today:
                        status, version = "finished", version + 1
                        updated = datetime.combine(ends + timedelta(days=1), time(2))
        for _organisation_id, at in journey["withdrawn"]:
            if first_accept and first_accept <= at and (ends is None or at.date() <= ends):
                self._flag(rows, {"journey": journey, "referral_id": None}, "consent-withdrawn",
                           "urgent", at, raised_by=(coordinator, trust.id),
                           description="Consent withdrawn during an active journey: re-plan.")
                break
        review_due = (today + timedelta(days=rnd.randint(-7, 90)) if status != "finished"
                      else discharged_on)
        rows["journey"].append((
            journey["id"], journey["person_id"], team.id, coordinator, status, discharged_on,
            net_days, ends, review_due, stepped_at, trigger, flag_id,
            "Stepped up after a concern from the peer worker." if stepped_at else None,
            coordinator, version, start, max(updated, start)))
        rows["journey_member"].extend(
            (journey["id"], user_id, role) for user_id, role in journey["members"].items())
        person_id = journey["person_id"]
        withdrawn = dict(journey["withdrawn"])
        seen: set[int] = set()
        for referral in referrals:  # one consent per receiving organisation, before the first
            organisation_id, created = referral[5], referral[21]
            if organisation_id in seen:
                continue
            seen.add(organisation_id)
            given = created - timedelta(days=rnd.uniform(0, 14))
            at = withdrawn.get(organisation_id)
            rows["consent"].append((
                person_id, organisation_id, CONSENT_PURPOSE,
                rnd.choice(("public-task", "consent")),
                rnd.choice(("health-social-care", "explicit-consent")),
                rnd.choice(("verbal", "written")), coordinator, given,
                given + timedelta(days=1095), at, coordinator if at else None,
                "The person asked us to stop sharing." if at else None, given))

    # --- flags ---------------------------------------------------------------------------------

    def _flag(self, rows: dict[str, list], ctx: dict, trigger: str, urgency: str,
              raised: datetime, *, category: str | None = None, description: str | None = None,
              raised_by: tuple[int | None, int] | None = None,
              resolve: tuple[str, datetime] | None = None) -> int:
        """One flag with its events; acknowledged, escalated and resolved as far as `now`."""
        rnd, now = self.rnd, self.now
        journey = ctx["journey"]
        team, trust = journey["team"], journey["trust"]
        flag_id = self._id("flag")
        due = acknowledgement_due(urgency, raised.replace(tzinfo=UTC)).astimezone(UTC)
        due = due.replace(tzinfo=None)
        low, high = ACK_MINUTES[urgency]
        minutes = rnd.uniform(low, high)
        if rnd.random() < 0.1:  # a busy duty queue: some wait well past their target
            minutes *= rnd.uniform(3, 20)
        acked = raised + timedelta(minutes=minutes)
        if resolve is not None:
            acked = min(acked, resolve[1])
            outcome, resolved = resolve
        else:
            outcome = rnd.choice(OUTCOMES[trigger])
            if category == "safeguarding" and rnd.random() < 0.5:
                outcome = "safeguarding-referral"
            resolved = acked + timedelta(hours=rnd.uniform(1, 240))
        if acked > now:
            acked = None
        if acked is None or resolved > now:
            resolved = outcome = None
        escalated = due + timedelta(minutes=rnd.uniform(5, 60))
        if escalated > now or (acked is not None and escalated >= acked):
            escalated = None
        duty = team.duty[0] if team.duty else None
        also = (trust.safeguarding_team_id if category == "safeguarding"
                and trust.safeguarding_team_id not in (None, team.id) else None)
        status = "resolved" if resolved else "acknowledged" if acked else "open"
        user, organisation = raised_by if raised_by else (None, None)
        referral_id = ctx["referral_id"]
        key = f"{trigger}:r{referral_id}" if referral_id else f"{trigger}:j{journey['id']}"
        rows["flag"].append((
            flag_id, journey["person_id"], journey["id"], referral_id, trigger, category,
            urgency, key, description, user, organisation, team.id, also, status, raised, due,
            acked, duty if acked else None, escalated, resolved, duty if resolved else None,
            outcome, None, 1 + (acked is not None) + (resolved is not None)
            + (escalated is not None)))
        events = [(flag_id, "raised", user, TRIGGER_LABELS[trigger], raised)]
        if escalated:
            events.append((flag_id, "escalated", None,
                           "not acknowledged within its target; team managers told", escalated))
        if acked:
            events.append((flag_id, "acknowledged", duty, None, acked))
        if resolved:
            events.append((flag_id, "resolved", duty, outcome, resolved))
        rows["flag_event"].extend(events)
        self.last_resolved = resolved
        return flag_id
