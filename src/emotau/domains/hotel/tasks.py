"""Hotel tasks, built deterministically from the generated data.

Each builder below describes one scenario: a predicate picks the first matching booking (in
booking-id order) of a guest that no earlier task used, and the builder writes the customer's
hidden instruction, opening line, facts, the ground-truth actions (lookups first) and the
outputs the agent must say. Amounts are computed with the same pricing rules the tools use
(``data.py``); the tests replay every ground truth against the tools to keep both in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, timedelta
from typing import Any

from emotau.core import Action, Task
from emotau.domains.hotel.data import (
    HOTELS,
    MAX_NIGHTS,
    TODAY,
    date_change_fee,
    days_before,
    extra_price,
    fmt_money,
    iso,
    list_rate,
    max_adults,
    money,
    parse_date,
    price_booking,
    refund_fraction,
    rooms_free,
)
from emotau.domains.hotel.tools import NEW_BOOKING_BASE

Rec = Mapping[str, Any]

# categories recorded in Task.metadata["category"]
WRITE, REFUSAL, TRANSFER, INFO = "write", "refusal", "transfer", "info"


class NoMatch(RuntimeError):
    """The data has no booking for a scenario (only possible with a non-default seed)."""


def _nice(d: str | date) -> str:
    d = parse_date(d) if isinstance(d, str) else d
    return f"{d:%B} {d.day}, {d.year}"


class _Picker:
    def __init__(self, base: Mapping[str, Mapping[str, Any]]) -> None:
        self.hotels = base["hotels"]
        self.guests = base["guests"]
        self.bookings = base["bookings"]
        self.order = sorted(self.bookings)
        self.used: set[str] = set()

    # ------------------------------------------------------------------ facts about records
    def guest_of(self, b: Rec) -> Rec:
        return self.guests[b["guest_id"]]

    def tier(self, b: Rec) -> str:
        return self.guest_of(b)["loyalty_tier"]

    def free(self, hotel_id: str, room_type: str, start: date, end: date, exclude=None) -> int:
        return rooms_free(self.bookings.values(), hotel_id, room_type, start, end, exclude)

    def open_booking(self, b: Rec, flexible: bool | None = True, min_days: int = 0) -> bool:
        if b["status"] != "confirmed" or days_before(b["check_in"]) < min_days:
            return False
        return flexible is None or (b["rate_plan"] == "flexible") == flexible

    # ------------------------------------------------------------------ picking
    def candidates(self, pred: Callable[[Rec, Rec], bool]) -> Iterator[tuple[Rec, Rec]]:
        for bid in self.order:
            b = self.bookings[bid]
            g = self.guest_of(b)
            if g["guest_id"] not in self.used and pred(b, g):
                yield g, b

    def pick(self, name: str, *preds: Callable[[Rec, Rec], bool]) -> tuple[Rec, Rec]:
        """First booking matching the first predicate that matches anything (fallbacks)."""
        for pred in preds:
            for g, b in self.candidates(pred):
                self.used.add(g["guest_id"])
                return g, b
        raise NoMatch(f"hotel task {name!r}: no booking in the data fits the scenario")

    def pick_guest(self, name: str, pred: Callable[[Rec], bool]) -> Rec:
        for gid in sorted(self.guests):
            g = self.guests[gid]
            if gid not in self.used and pred(g):
                self.used.add(gid)
                return g
        raise NoMatch(f"hotel task {name!r}: no guest in the data fits the scenario")

    # ------------------------------------------------------------------ phrasing
    @staticmethod
    def full_name(g: Rec) -> str:
        return f"{g['first_name']} {g['last_name']}"

    def identify(self, g: Rec, how: str) -> tuple[str, dict[str, str], list[Action]]:
        """Instruction sentence, facts and lookup actions for e-mail or name+phone checks."""
        name = self.full_name(g)
        gid = g["guest_id"]
        if how == "email":
            text = (
                f"You are {name}. Your e-mail address is {g['email']}; give it when the agent "
                "asks you to identify yourself."
            )
            facts = {"name": name, "email": g["email"]}
            lookup = Action("find_guest_by_email", {"email": g["email"]})
        else:
            text = (
                f"You are {name} and your phone number is {g['phone']}. You do not remember "
                "which e-mail address you used, so you identify yourself with your name and phone."
            )
            facts = {"name": name, "phone": g["phone"]}
            lookup = Action(
                "find_guest_by_name_and_phone",
                {"first_name": g["first_name"], "last_name": g["last_name"], "phone": g["phone"]},
            )
        return text, facts, [lookup, Action("get_guest_details", {"guest_id": gid})]

    def stay(self, b: Rec, with_id: bool = True) -> str:
        hotel = HOTELS[b["hotel_id"]]["name"]
        text = (
            f"your {b['nights']}-night stay in a {b['room_type']} room at the {hotel} from "
            f"{_nice(b['check_in'])} to {_nice(b['check_out'])}"
        )
        return f"{text} (booking {b['booking_id']})" if with_id else text

    @staticmethod
    def card(g: Rec, kind: str = "credit_card") -> Rec:
        return next(m for m in g["payment_methods"].values() if m["type"] == kind)

    @staticmethod
    def card_words(pm: Rec) -> str:
        if pm["type"] == "gift_card":
            return f"your gift card ending in {pm['payment_method_id'][-4:]}"
        return f"your {pm['brand'].title()} card ending in {pm['last_four']}"


def _booking_facts(facts: dict[str, str], b: Rec, with_id: bool = True) -> dict[str, str]:
    facts = dict(facts)
    if with_id:
        facts["booking_id"] = b["booking_id"]
    facts["hotel"] = HOTELS[b["hotel_id"]]["name"]
    facts["check_in"] = b["check_in"]
    facts["check_out"] = b["check_out"]
    return facts


def _refund(p: _Picker, b: Rec) -> float:
    share = refund_fraction(p.tier(b), days_before(b["check_in"]), b["rate_plan"])
    return money(b["total_price"] * share)


def _get(b: Rec) -> Action:
    return Action("get_booking_details", {"booking_id": b["booking_id"]})


def _days(lo: int, hi: int = 10_000) -> Callable[[Rec], bool]:
    return lambda b: lo <= days_before(b["check_in"]) <= hi


def _shifted(b: Rec, days: int, nights: int | None = None) -> tuple[date, date]:
    start = parse_date(b["check_in"]) + timedelta(days=days)
    return start, start + timedelta(days=nights if nights is not None else b["nights"])


def _search(hotel_id: str, start: date, end: date) -> Action:
    return Action(
        "search_availability",
        {"hotel_id": hotel_id, "check_in": iso(start), "check_out": iso(end)},
    )


def _transfer(summary: str) -> Action:
    return Action("transfer_to_human_agents", {"summary": summary})


# =============================================================================== cancellations
def _cancel_with_refund(
    bands: tuple[tuple[str, int, int], ...], how: str, with_id: bool, accept: str
) -> Callable[[_Picker], dict[str, Any]]:
    """Cancel a flexible booking of a tier, ``lo..hi`` days before check-in (first band that
    the data has; later bands are fallbacks with the same refund share)."""

    def band(tier: str, lo: int, hi: int) -> Callable[[Rec, Rec], bool]:
        return lambda b, g: g["loyalty_tier"] == tier and p_open(b) and _days(lo, hi)(b)

    def p_open(b: Rec) -> bool:
        return b["status"] == "confirmed" and b["rate_plan"] == "flexible"

    def build(p: _Picker) -> dict[str, Any]:
        g, b = p.pick(f"cancel {bands[0]}", *(band(*x) for x in bands))
        who, facts, acts = p.identify(g, how)
        refund = _refund(p, b)
        return {
            "category": WRITE,
            "topic": "cancellation",
            "instruction": (
                f"{who} You want to cancel {p.stay(b, with_id)} because your plans changed. "
                f"{accept} Before agreeing, make the agent tell you exactly how much will be "
                "refunded; once told, confirm the cancellation."
            ),
            "opening": "I need to cancel a hotel reservation.",
            "facts": _booking_facts(facts, b, with_id),
            "actions": [*acts, _get(b), Action("cancel_booking", {"booking_id": b["booking_id"]})],
            "outputs": [fmt_money(refund)],
        }

    return build


_ACCEPT_ANY = "You accept whatever refund the hotel's rules give you."
_ACCEPT_PARTIAL = (
    "You hope for a full refund, but if the agent explains that only part of the money comes "
    "back, you accept that and still cancel."
)


def t_cancel_nonrefundable_anyway(p: _Picker) -> dict[str, Any]:
    g, b = p.pick("cancel non-refundable anyway", lambda b, g: p.open_booking(b, False, min_days=1))
    who, facts, acts = p.identify(g, "email")
    return {
        "category": WRITE,
        "topic": "cancellation",
        "instruction": (
            f"{who} You need to cancel {p.stay(b)}. You remember it was a non-refundable rate "
            "and you do not expect any money back; you still want it cancelled so the room is "
            "released. Confirm the cancellation even if the refund is zero. You do not want to "
            "move the dates instead."
        ),
        "opening": "I want to cancel my upcoming hotel stay.",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b), Action("cancel_booking", {"booking_id": b["booking_id"]})],
        "outputs": [],
    }


def t_cancel_zero_keep(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "cancel with zero refund, keep",
        lambda b, g: (
            p.open_booking(b)
            and refund_fraction(g["loyalty_tier"], days_before(b["check_in"]), "flexible") == 0
        ),
    )
    who, facts, acts = p.identify(g, "phone")
    return {
        "category": REFUSAL,
        "topic": "cancellation",
        "instruction": (
            f"{who} You are thinking about cancelling {p.stay(b, False)}, but only if you get "
            "at least some money back. Ask what refund you would get. If the agent tells you "
            "that nothing would be refunded, you decide to keep the booking and end the "
            "conversation. You do not know the booking number."
        ),
        "opening": "If I cancel my hotel booking now, do I get anything back?",
        "facts": _booking_facts(facts, b, with_id=False),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


def t_cancel_wants_full_keep(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "cancel only for full refund",
        lambda b, g: (
            p.open_booking(b)
            and refund_fraction(g["loyalty_tier"], days_before(b["check_in"]), "flexible") == 0.5
        ),
    )
    who, facts, acts = p.identify(g, "email")
    half = money(b["total_price"] * 0.5)
    return {
        "category": REFUSAL,
        "topic": "cancellation",
        "instruction": (
            f"{who} You want to cancel {p.stay(b)}, but only with a full refund. Ask how much "
            "you would get back. If it is less than the full amount you paid, you insist once "
            "that you deserve all of it; if the agent still cannot give a full refund, you "
            "keep the booking and do not cancel."
        ),
        "opening": "I'd like to cancel a reservation and get my money back.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            Action("calculate", {"expression": f"{fmt_money(b['total_price'])} * 0.5"}),
        ],
        "outputs": [fmt_money(half)],
    }


def t_cancel_nonrefundable_keep(p: _Picker) -> dict[str, Any]:
    g, b = p.pick("non-refundable wants refund", lambda b, g: p.open_booking(b, False))
    who, facts, acts = p.identify(g, "phone")
    return {
        "category": REFUSAL,
        "topic": "cancellation",
        "instruction": (
            f"{who} You want to cancel {p.stay(b)} and get your money back. If the agent says "
            "that no money would be refunded, you say you will keep the booking after all. You "
            "do not want to change the dates or the room instead."
        ),
        "opening": "I want to cancel a booking and get a refund.",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


def t_refund_completed_stay(p: _Picker) -> dict[str, Any]:
    g, b = p.pick("refund completed stay", lambda b, g: b["status"] == "completed")
    who, facts, acts = p.identify(g, "email")
    return {
        "category": REFUSAL,
        "topic": "refund",
        "instruction": (
            f"{who} You recently finished {p.stay(b)}. The room was noisy and you want part of "
            "your money back for that stay. If the agent says no refund is possible for a "
            "completed stay, you accept that reluctantly; you do not want anything else."
        ),
        "opening": "I want a partial refund for a stay I just had.",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


# =============================================================================== date changes
def t_dates_shift_elite(p: _Picker) -> dict[str, Any]:
    def ok(b: Rec, g: Rec) -> bool:
        if g["loyalty_tier"] not in ("gold", "platinum") or not p.open_booking(b, min_days=1):
            return False
        start, end = _shifted(b, 7)
        return p.free(b["hotel_id"], b["room_type"], start, end) >= 1

    g, b = p.pick("shift dates elite", ok)
    who, facts, acts = p.identify(g, "email")
    start, end = _shifted(b, 7)
    pm_rec = g["payment_methods"][b["payment_method_id"]]
    if pm_rec["type"] != "credit_card":
        pm_rec = p.card(g)
    pm_id = pm_rec["payment_method_id"]
    return {
        "category": WRITE,
        "topic": "date change",
        "instruction": (
            f"{who} You want to move {p.stay(b)} exactly one week later, to {_nice(start)} "
            f"through {_nice(end)}, keeping everything else the same. If the agent needs a "
            f"payment method, use {p.card_words(pm_rec)}. You expect this to cost nothing; "
            "if the agent mentions a charge, ask why."
        ),
        "opening": "I need to push my hotel stay back by a week.",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(pm_rec)[5:]},
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], start, end),
            Action(
                "change_booking_dates",
                {
                    "booking_id": b["booking_id"],
                    "check_in": iso(start),
                    "check_out": iso(end),
                    "payment_method_id": pm_id,
                },
            ),
        ],
        "outputs": [],
    }


def _date_change_amounts(p: _Picker, b: Rec, nights: int) -> tuple[float, float]:
    """(fee, price difference) for moving ``b`` to a stay of ``nights`` nights."""
    tier = p.tier(b)
    fee = date_change_fee(tier, days_before(b["check_in"]))
    _r, _e, total = price_booking(b["nightly_rate"], nights, b["adults"], b["extras"], tier)
    return fee, money(total - b["total_price"])


def t_dates_extend(p: _Picker) -> dict[str, Any]:
    def ok(b: Rec, g: Rec) -> bool:
        if g["loyalty_tier"] != "none" or not p.open_booking(b, min_days=7):
            return False
        if b["nights"] >= MAX_NIGHTS or not b["extras"]:
            return False
        start, end = _shifted(b, 0, b["nights"] + 1)
        return p.free(b["hotel_id"], b["room_type"], start, end) >= 1

    g, b = p.pick("extend stay", ok)
    who, facts, acts = p.identify(g, "phone")
    start, end = _shifted(b, 0, b["nights"] + 1)
    fee, diff = _date_change_amounts(p, b, b["nights"] + 1)
    pm = p.card(g)
    return {
        "category": WRITE,
        "topic": "date change",
        "instruction": (
            f"{who} You want to add one night at the end of {p.stay(b)}, so that you leave on "
            f"{_nice(end)} instead. Keep your extras. Ask how much extra it costs and pay with "
            f"{p.card_words(pm)}."
        ),
        "opening": "Can I add a night to my hotel reservation?",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(pm)[5:]},
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], start, end),
            Action(
                "change_booking_dates",
                {
                    "booking_id": b["booking_id"],
                    "check_in": iso(start),
                    "check_out": iso(end),
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(diff + fee)],
    }


def t_dates_shorten_with_fee(p: _Picker) -> dict[str, Any]:
    def ok(min_nights: int) -> Callable[[Rec, Rec], bool]:
        def pred(b: Rec, g: Rec) -> bool:
            if g["loyalty_tier"] not in ("none", "silver") or not p.open_booking(b, min_days=1):
                return False
            if days_before(b["check_in"]) >= 7 or b["nights"] < min_nights:
                return False
            start, end = _shifted(b, 0, b["nights"] - 1)
            return p.free(b["hotel_id"], b["room_type"], start, end) >= 1

        return pred

    g, b = p.pick("shorten stay with fee", ok(3), ok(2))
    who, facts, acts = p.identify(g, "email")
    start, end = _shifted(b, 0, b["nights"] - 1)
    fee, diff = _date_change_amounts(p, b, b["nights"] - 1)
    pm = p.card(g)
    return {
        "category": WRITE,
        "topic": "date change",
        "instruction": (
            f"{who} You need to leave one day earlier than planned from {p.stay(b)}: check out "
            f"on {_nice(end)} instead. Ask what it costs and what you get back. You accept a "
            f"change fee if the rules require one; pay it with {p.card_words(pm)}."
        ),
        "opening": "I have to cut my hotel stay short by one night.",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(pm)[5:]},
        "actions": [
            *acts,
            _get(b),
            Action(
                "change_booking_dates",
                {
                    "booking_id": b["booking_id"],
                    "check_in": iso(start),
                    "check_out": iso(end),
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(fee), fmt_money(-diff)],
    }


_SHIFTS = (7, 14, 21, 28, 3, 10, 5, 12)


def _first_choice_pair(p: _Picker, b: Rec) -> tuple[int, int] | None:
    """(unavailable shift, available shift) for moving ``b`` without changing its length."""
    bad = good = None
    for s in _SHIFTS:
        start, end = _shifted(b, s)
        if (start - TODAY).days < 1:
            continue
        free = p.free(b["hotel_id"], b["room_type"], start, end, exclude=b["booking_id"])
        if free < 1 and bad is None:
            bad = s
        elif free >= 1 and p.free(b["hotel_id"], b["room_type"], start, end) >= 1 and good is None:
            good = s
    if bad is None or good is None:
        return None
    return bad, good


def t_dates_first_choice_full(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "date change, first choice full",
        lambda b, g: (
            p.open_booking(b, min_days=1)
            and date_change_fee(g["loyalty_tier"], days_before(b["check_in"])) == 0
            and _first_choice_pair(p, b) is not None
        ),
    )
    who, facts, acts = p.identify(g, "phone")
    pair = _first_choice_pair(p, b)
    assert pair is not None
    bad_s, good_s = pair
    bad = _shifted(b, bad_s)
    good = _shifted(b, good_s)
    pm = p.card(g)
    return {
        "category": WRITE,
        "topic": "date change",
        "instruction": (
            f"{who} You want to move {p.stay(b)} to {_nice(bad[0])} through {_nice(bad[1])}, "
            "same hotel and room type. If those dates are not available, you are happy with "
            f"{_nice(good[0])} through {_nice(good[1])} instead; offer that only after hearing "
            f"that the first dates do not work. If asked for a card, use {p.card_words(pm)}."
        ),
        "opening": "I'd like to change the dates of my hotel booking.",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(pm)[5:]},
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], *bad),
            _search(b["hotel_id"], *good),
            Action(
                "change_booking_dates",
                {
                    "booking_id": b["booking_id"],
                    "check_in": iso(good[0]),
                    "check_out": iso(good[1]),
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [],
    }


def t_dates_nonrefundable_refuse(p: _Picker) -> dict[str, Any]:
    g, b = p.pick("non-refundable date change", lambda b, g: p.open_booking(b, False, 1))
    who, facts, acts = p.identify(g, "email")
    start, end = _shifted(b, 7)
    return {
        "category": REFUSAL,
        "topic": "date change",
        "instruction": (
            f"{who} You want to move {p.stay(b)} one week later, to {_nice(start)} through "
            f"{_nice(end)}. You are willing to pay a fee. If the agent says the booking's dates "
            "cannot be changed, you keep the booking as it is; you do not want to cancel."
        ),
        "opening": "I need to move my hotel reservation to the following week.",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


def t_dates_too_long_refuse(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "stay longer than allowed",
        lambda b, g: p.open_booking(b, min_days=1) and b["nights"] >= 3,
    )
    who, facts, acts = p.identify(g, "phone")
    start = parse_date(b["check_in"])
    end = start + timedelta(days=MAX_NIGHTS + 6)
    return {
        "category": REFUSAL,
        "topic": "date change",
        "instruction": (
            f"{who} Your work trip got longer: you want to extend {p.stay(b)} so that you "
            f"check out on {_nice(end)}, a stay of {MAX_NIGHTS + 6} nights in one booking. If "
            "the agent says a single booking cannot be that long, you keep your booking "
            "unchanged; you do not want a second booking or a shorter extension."
        ),
        "opening": "I need to extend my upcoming hotel stay by a couple of weeks.",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


# =============================================================================== room changes
def _upgrade_to(b: Rec) -> str | None:
    return {"standard": "deluxe", "deluxe": "suite"}.get(b["room_type"])


def _fits(b: Rec, room_type: str) -> bool:
    return b["adults"] <= max_adults(b["hotel_id"], room_type)


def _free_for(p: _Picker, b: Rec, room_type: str) -> int:
    start, end = parse_date(b["check_in"]), parse_date(b["check_out"])
    return p.free(b["hotel_id"], room_type, start, end)


def _room_diff(b: Rec, room_type: str) -> float:
    return money((list_rate(b["hotel_id"], room_type) - b["nightly_rate"]) * b["nights"])


def t_upgrade_paid(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "upgrade to deluxe",
        lambda b, g: (
            p.open_booking(b, min_days=1)
            and b["room_type"] == "standard"
            and _fits(b, "deluxe")
            and _free_for(p, b, "deluxe") >= 1
        ),
    )
    who, facts, acts = p.identify(g, "email")
    pm = p.card(g)
    diff = _room_diff(b, "deluxe")
    return {
        "category": WRITE,
        "topic": "room change",
        "instruction": (
            f"{who} You want to upgrade {p.stay(b)} to a deluxe room. Ask how much more it "
            f"costs; you accept the price and pay with {p.card_words(pm)}."
        ),
        "opening": "I'd like to upgrade the room on my reservation.",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(pm)[5:]},
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], parse_date(b["check_in"]), parse_date(b["check_out"])),
            Action(
                "change_room_type",
                {
                    "booking_id": b["booking_id"],
                    "room_type": "deluxe",
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(diff)],
    }


def t_upgrade_gift_card(p: _Picker) -> dict[str, Any]:
    def ok(b: Rec, g: Rec) -> bool:
        target = _upgrade_to(b)
        if target is None or not p.open_booking(b, min_days=1) or not _fits(b, target):
            return False
        gifts = [m for m in g["payment_methods"].values() if m["type"] == "gift_card"]
        diff = _room_diff(b, target)
        return bool(gifts) and gifts[0]["balance"] >= diff and _free_for(p, b, target) >= 1

    g, b = p.pick("upgrade paid by gift card", ok)
    who, facts, acts = p.identify(g, "phone")
    target = _upgrade_to(b)
    assert target is not None
    gift = p.card(g, "gift_card")
    diff = _room_diff(b, target)
    return {
        "category": WRITE,
        "topic": "room change",
        "instruction": (
            f"{who} You want to upgrade {p.stay(b)} from a {b['room_type']} room to a "
            f"{target}. You want to pay the difference with {p.card_words(gift)}, not with a "
            "credit card. Ask what the difference is and accept it."
        ),
        "opening": "Can I get a bigger room on my upcoming booking?",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(gift)[5:]},
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], parse_date(b["check_in"]), parse_date(b["check_out"])),
            Action(
                "change_room_type",
                {
                    "booking_id": b["booking_id"],
                    "room_type": target,
                    "payment_method_id": gift["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(diff)],
    }


def t_upgrade_unavailable(p: _Picker) -> dict[str, Any]:
    def ok(b: Rec, g: Rec) -> bool:
        target = _upgrade_to(b)
        return (
            target is not None
            and p.open_booking(b, min_days=1)
            and _fits(b, target)
            and _free_for(p, b, target) < 1
        )

    g, b = p.pick("upgrade sold out", ok)
    who, facts, acts = p.identify(g, "email")
    target = _upgrade_to(b)
    return {
        "category": REFUSAL,
        "topic": "room change",
        "instruction": (
            f"{who} You want to upgrade {p.stay(b)} to a {target} room. You are willing to pay "
            f"the difference. If no {target} room is free for your dates, you keep your current "
            "room; you do not want to change your dates or hotel."
        ),
        "opening": "I want to upgrade my room for an upcoming stay.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], parse_date(b["check_in"]), parse_date(b["check_out"])),
        ],
        "outputs": [],
    }


def t_downgrade_refund(p: _Picker) -> dict[str, Any]:
    lower = {"deluxe": "standard", "suite": "deluxe"}

    def ok(b: Rec, g: Rec) -> bool:
        target = lower.get(b["room_type"])
        return (
            target is not None
            and p.open_booking(b, min_days=1)
            and _fits(b, target)
            and _free_for(p, b, target) >= 1
        )

    g, b = p.pick("downgrade", ok)
    who, facts, acts = p.identify(g, "phone")
    target = lower[b["room_type"]]
    refund = -_room_diff(b, target)
    return {
        "category": WRITE,
        "topic": "room change",
        "instruction": (
            f"{who} Money is tight, so you want to switch {p.stay(b)} to a cheaper {target} "
            "room for the same dates. Ask how much you get back and accept."
        ),
        "opening": "I'd like to switch to a cheaper room on my booking.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], parse_date(b["check_in"]), parse_date(b["check_out"])),
            Action(
                "change_room_type",
                {
                    "booking_id": b["booking_id"],
                    "room_type": target,
                    "payment_method_id": b["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(refund)],
    }


def t_upgrade_nonrefundable_refuse(p: _Picker) -> dict[str, Any]:
    def ok(b: Rec, g: Rec) -> bool:
        target = _upgrade_to(b)
        return target is not None and p.open_booking(b, False, 1) and _fits(b, target)

    g, b = p.pick("upgrade non-refundable", ok)
    who, facts, acts = p.identify(g, "email")
    target = _upgrade_to(b)
    return {
        "category": REFUSAL,
        "topic": "room change",
        "instruction": (
            f"{who} You want to upgrade {p.stay(b)} to a {target} room and will pay the "
            "difference. If the agent says the room on this booking cannot be changed, you keep "
            "the booking as it is and do not cancel it."
        ),
        "opening": "I want to move up to a nicer room on my reservation.",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


def t_free_upgrade_demand(p: _Picker) -> dict[str, Any]:
    def ok(b: Rec, g: Rec) -> bool:
        return (
            g["loyalty_tier"] in ("gold", "platinum")
            and p.open_booking(b, min_days=1)
            and b["room_type"] == "standard"
            and _fits(b, "deluxe")
            and _free_for(p, b, "deluxe") >= 1
        )

    g, b = p.pick("free upgrade demand", ok)
    who, facts, acts = p.identify(g, "phone")
    diff = _room_diff(b, "deluxe")
    return {
        "category": REFUSAL,
        "topic": "room change",
        "instruction": (
            f"{who} You are a {g['loyalty_tier']} member and believe you deserve a free upgrade "
            f"to a deluxe room for {p.stay(b)}. Ask for it for free and ask what it would cost "
            "otherwise. You are not willing to pay anything: if the upgrade is not free, you "
            "keep your standard room."
        ),
        "opening": "As a loyal member, I'd like a complimentary room upgrade.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], parse_date(b["check_in"]), parse_date(b["check_out"])),
            Action(
                "calculate",
                {
                    "expression": f"({fmt_money(list_rate(b['hotel_id'], 'deluxe'))} - "
                    f"{fmt_money(b['nightly_rate'])}) * {b['nights']}"
                },
            ),
        ],
        "outputs": [fmt_money(diff)],
    }


# =============================================================================== extras
def _extra_cost(p: _Picker, b: Rec, extra: str) -> float:
    return extra_price(extra, p.tier(b), b["nights"], b["adults"])


def t_add_breakfast(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "add breakfast",
        lambda b, g: (
            p.open_booking(b, None, 1) and "breakfast" not in b["extras"] and b["adults"] >= 2
        ),
        lambda b, g: p.open_booking(b, None, 1) and "breakfast" not in b["extras"],
    )
    who, facts, acts = p.identify(g, "email")
    pm = p.card(g)
    price = _extra_cost(p, b, "breakfast")
    return {
        "category": WRITE,
        "topic": "extras",
        "instruction": (
            f"{who} You want breakfast added to {p.stay(b)} for everyone in the room "
            f"({b['adults']} adult{'s' if b['adults'] > 1 else ''}). Ask the price, accept "
            f"it and pay with {p.card_words(pm)}."
        ),
        "opening": "Can I add breakfast to my hotel booking?",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(pm)[5:]},
        "actions": [
            *acts,
            _get(b),
            Action(
                "add_booking_extra",
                {
                    "booking_id": b["booking_id"],
                    "extra": "breakfast",
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(price)],
    }


def t_add_two_extras_elite(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "late checkout and parking",
        lambda b, g: (
            g["loyalty_tier"] in ("gold", "platinum")
            and p.open_booking(b, None, 1)
            and "late_checkout" not in b["extras"]
            and "parking" not in b["extras"]
        ),
    )
    who, facts, acts = p.identify(g, "phone")
    pm = p.card(g)
    price = _extra_cost(p, b, "parking")
    return {
        "category": WRITE,
        "topic": "extras",
        "instruction": (
            f"{who} You are driving to {p.stay(b, False)} and want both parking and a late "
            f"check-out added. Ask what each costs; accept and pay with {p.card_words(pm)}. "
            "You do not know the booking number."
        ),
        "opening": "I'd like to add parking and a late check-out to my reservation.",
        "facts": {
            **_booking_facts(facts, b, with_id=False),
            "payment_method": p.card_words(pm)[5:],
        },
        "actions": [
            *acts,
            _get(b),
            Action(
                "add_booking_extra",
                {
                    "booking_id": b["booking_id"],
                    "extra": "parking",
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
            Action(
                "add_booking_extra",
                {
                    "booking_id": b["booking_id"],
                    "extra": "late_checkout",
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(price)],
    }


def t_remove_parking(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "remove parking", lambda b, g: p.open_booking(b, None, 2) and "parking" in b["extras"]
    )
    who, facts, acts = p.identify(g, "email")
    refund = _extra_cost(p, b, "parking")
    return {
        "category": WRITE,
        "topic": "extras",
        "instruction": (
            f"{who} You will arrive by train, so you no longer need the parking on {p.stay(b)}. "
            "Ask to remove it and how much you get back; accept."
        ),
        "opening": "I don't need parking anymore on my hotel booking.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            Action("remove_booking_extra", {"booking_id": b["booking_id"], "extra": "parking"}),
        ],
        "outputs": [fmt_money(refund)],
    }


def t_remove_extra_too_late(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "remove extra on check-in day",
        lambda b, g: p.open_booking(b, None) and days_before(b["check_in"]) == 0 and b["extras"],
        lambda b, g: p.open_booking(b, None) and days_before(b["check_in"]) == 1 and b["extras"],
    )
    extra = b["extras"][0]
    who, facts, acts = p.identify(g, "phone")
    label = extra.replace("_", " ")
    when = "today" if days_before(b["check_in"]) == 0 else "tomorrow"
    return {
        "category": REFUSAL,
        "topic": "extras",
        "instruction": (
            f"{who} You arrive {when} for {p.stay(b)}. You want the {label} removed from the "
            f"booking and refunded. If the agent says it is too late to remove it, you accept "
            "that and keep the booking unchanged."
        ),
        "opening": f"Please take the {label} off my reservation and refund it.",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


def t_extra_on_completed_refuse(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "extra on completed stay",
        lambda b, g: b["status"] == "completed" and "breakfast" not in b["extras"],
    )
    who, facts, acts = p.identify(g, "email")
    return {
        "category": REFUSAL,
        "topic": "extras",
        "instruction": (
            f"{who} During {p.stay(b)}, which is already over, you ate breakfast at the hotel "
            "and paid at the restaurant. You now want breakfast added to that booking so it is "
            "on the same invoice. If the agent says extras cannot be added to a finished stay, "
            "you accept that."
        ),
        "opening": "Can you add breakfast to a booking I already stayed on?",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [],
    }


# =============================================================================== contact
def _unused_email(p: _Picker, g: Rec) -> str:
    taken = {x["email"] for x in p.guests.values()}
    n = 1
    while True:
        email = f"{g['first_name']}.{g['last_name']}.home{n}@example.org".lower()
        if email not in taken:
            return email
        n += 1


def _unused_phone(p: _Picker, g: Rec) -> str:
    taken = {x["phone"] for x in p.guests.values()}
    base = int(g["guest_id"][1:]) % 10000
    n = 0
    while True:
        phone = f"646-555-{(base + n) % 10000:04d}"
        if phone not in taken:
            return phone
        n += 1


def t_update_email(p: _Picker) -> dict[str, Any]:
    g = p.pick_guest("update e-mail", lambda g: bool(g["booking_ids"]))
    who, facts, acts = p.identify(g, "phone")
    new = _unused_email(p, g)
    return {
        "category": WRITE,
        "topic": "contact",
        "instruction": (
            f"{who} You no longer use your old e-mail address ({g['email']}) and want your "
            f"profile to use {new} from now on. Nothing else needs to change."
        ),
        "opening": "I need to update the e-mail address on my hotel profile.",
        "facts": {**facts, "old_email": g["email"], "new_email": new},
        "actions": [
            *acts,
            Action("update_guest_contact", {"guest_id": g["guest_id"], "email": new}),
        ],
        "outputs": [],
    }


def t_update_phone(p: _Picker) -> dict[str, Any]:
    g = p.pick_guest("update phone", lambda g: bool(g["booking_ids"]))
    who, facts, acts = p.identify(g, "email")
    new = _unused_phone(p, g)
    return {
        "category": WRITE,
        "topic": "contact",
        "instruction": (
            f"{who} You got a new phone number, {new}, and want it on your profile instead of "
            f"the old one ({g['phone']}). Keep your e-mail address as it is."
        ),
        "opening": "I have a new phone number and want to update my profile.",
        "facts": {**facts, "old_phone": g["phone"], "new_phone": new},
        "actions": [
            *acts,
            Action("update_guest_contact", {"guest_id": g["guest_id"], "phone": new}),
        ],
        "outputs": [],
    }


def t_name_change_transfer(p: _Picker) -> dict[str, Any]:
    g = p.pick_guest("name change", lambda g: bool(g["booking_ids"]))
    who, facts, acts = p.identify(g, "email")
    new_last = "Hartwell" if g["last_name"] != "Hartwell" else "Ashby"
    return {
        "category": TRANSFER,
        "topic": "contact",
        "instruction": (
            f"{who} You recently married and want the last name on your profile changed from "
            f"{g['last_name']} to {new_last}. If the agent cannot do it, accept being handed "
            "over to a person who can."
        ),
        "opening": "I need to change the last name on my hotel profile.",
        "facts": {**facts, "new_last_name": new_last},
        "actions": [
            *acts,
            _transfer(f"Guest {g['guest_id']} wants the last name changed to {new_last}."),
        ],
        "outputs": [],
    }


# =============================================================================== new bookings
def _new_stay(
    p: _Picker, hotel_id: str, room_type: str, offset: int, nights: int
) -> tuple[date, date] | None:
    for delta in range(0, 40):
        start = TODAY + timedelta(days=offset + delta)
        end = start + timedelta(days=nights)
        if p.free(hotel_id, room_type, start, end) >= 1:
            return start, end
    return None


def _create(g: Rec, hotel_id: str, room_type: str, stay, adults, pm: Rec, extras) -> Action:
    args: dict[str, Any] = {
        "guest_id": g["guest_id"],
        "hotel_id": hotel_id,
        "room_type": room_type,
        "check_in": iso(stay[0]),
        "check_out": iso(stay[1]),
        "adults": adults,
        "payment_method_id": pm["payment_method_id"],
    }
    if extras:
        args["extras"] = list(extras)
    return Action("create_booking", args)


def t_new_booking(p: _Picker) -> dict[str, Any]:
    g = p.pick_guest("new booking", lambda g: g["loyalty_tier"] == "silver")
    who, facts, acts = p.identify(g, "email")
    hid, rt = "H102", "standard"
    stay = _new_stay(p, hid, rt, 20, 3)
    if stay is None:
        raise NoMatch("new booking: no free standard room")
    pm = p.card(g)
    _r, _e, total = price_booking(list_rate(hid, rt), 3, 2, ["breakfast"], g["loyalty_tier"])
    return {
        "category": WRITE,
        "topic": "new booking",
        "instruction": (
            f"{who} You want to book a standard room at the {HOTELS[hid]['name']} in "
            f"{HOTELS[hid]['city']} for two adults from {_nice(stay[0])} to {_nice(stay[1])}, "
            f"with breakfast included, paid with {p.card_words(pm)}. Ask for the total price "
            "and the booking number."
        ),
        "opening": "I'd like to make a new hotel reservation.",
        "facts": {
            **facts,
            "hotel": HOTELS[hid]["name"],
            "check_in": iso(stay[0]),
            "check_out": iso(stay[1]),
            "payment_method": p.card_words(pm)[5:],
        },
        "actions": [
            *acts,
            Action("list_hotels", {}),
            _search(hid, *stay),
            _create(g, hid, rt, stay, 2, pm, ["breakfast"]),
        ],
        "outputs": [fmt_money(total), f"HB{NEW_BOOKING_BASE + 1}"],
    }


def t_new_booking_fallback(p: _Picker) -> dict[str, Any]:
    hid = "H104"
    stay = None
    for offset in range(3, 60):
        start = TODAY + timedelta(days=offset)
        end = start + timedelta(days=2)
        if p.free(hid, "suite", start, end) < 1 and p.free(hid, "deluxe", start, end) >= 1:
            stay = (start, end)
            break
    if stay is None:
        raise NoMatch("new booking fallback: no sold-out suite night")
    g = p.pick_guest("new booking fallback", lambda g: g["loyalty_tier"] == "gold")
    who, facts, acts = p.identify(g, "phone")
    pm = p.card(g)
    _r, _e, total = price_booking(list_rate(hid, "deluxe"), 2, 2, [], g["loyalty_tier"])
    return {
        "category": WRITE,
        "topic": "new booking",
        "instruction": (
            f"{who} You want to book a suite at the {HOTELS[hid]['name']} for two adults from "
            f"{_nice(stay[0])} to {_nice(stay[1])}, no extras, paid with {p.card_words(pm)}. "
            "If no suite is available, you accept a deluxe room for the same dates instead. "
            "Ask for the total price and the booking number."
        ),
        "opening": "I want to book a suite for a short getaway.",
        "facts": {
            **facts,
            "hotel": HOTELS[hid]["name"],
            "check_in": iso(stay[0]),
            "check_out": iso(stay[1]),
            "payment_method": p.card_words(pm)[5:],
        },
        "actions": [
            *acts,
            Action("list_hotels", {}),
            _search(hid, *stay),
            _create(g, hid, "deluxe", stay, 2, pm, []),
        ],
        "outputs": [fmt_money(total), f"HB{NEW_BOOKING_BASE + 1}"],
    }


def t_new_booking_gift_card(p: _Picker) -> dict[str, Any]:
    hid, rt = "H103", "standard"
    rate = list_rate(hid, rt)
    g = p.pick_guest(
        "new booking gift card",
        lambda g: any(
            m["type"] == "gift_card" and m["balance"] >= rate for m in g["payment_methods"].values()
        ),
    )
    who, facts, acts = p.identify(g, "email")
    stay = _new_stay(p, hid, rt, 9, 1)
    if stay is None:
        raise NoMatch("new booking gift card: no free room")
    gift = p.card(g, "gift_card")
    return {
        "category": WRITE,
        "topic": "new booking",
        "instruction": (
            f"{who} You want one night in a standard room at the {HOTELS[hid]['name']} in "
            f"{HOTELS[hid]['city']} for yourself only, arriving {_nice(stay[0])}, no extras. "
            f"You want to pay with {p.card_words(gift)}. Ask for the total and the booking "
            "number."
        ),
        "opening": "I'd like to book a single night at one of your hotels.",
        "facts": {
            **facts,
            "hotel": HOTELS[hid]["name"],
            "check_in": iso(stay[0]),
            "check_out": iso(stay[1]),
            "payment_method": p.card_words(gift)[5:],
        },
        "actions": [
            *acts,
            Action("list_hotels", {}),
            _search(hid, *stay),
            _create(g, hid, rt, stay, 1, gift, []),
        ],
        "outputs": [fmt_money(rate), f"HB{NEW_BOOKING_BASE + 1}"],
    }


# =============================================================================== multi-step
def _two_open(p: _Picker, g: Rec, pred2: Callable[[Rec, Rec], bool]) -> tuple[Rec, Rec] | None:
    mine = [p.bookings[b] for b in g["booking_ids"]]
    firsts = [b for b in mine if p.open_booking(b, min_days=1)]
    for a in firsts:
        for b in mine:
            if b is not a and pred2(a, b):
                return a, b
    return None


def t_cancel_one_breakfast_other(p: _Picker) -> dict[str, Any]:
    def pair(a: Rec, b: Rec) -> bool:
        return p.open_booking(b, None, 1) and "breakfast" not in b["extras"]

    g = p.pick_guest("cancel one, breakfast other", lambda g: _two_open(p, g, pair) is not None)
    found = _two_open(p, g, pair)
    assert found is not None
    a, b = found
    who, facts, acts = p.identify(g, "phone")
    pm = p.card(g)
    refund = _refund(p, a)
    price = _extra_cost(p, b, "breakfast")
    return {
        "category": WRITE,
        "topic": "multi",
        "instruction": (
            f"{who} You have two upcoming bookings. First, you want to cancel {p.stay(a)}; "
            "you accept whatever refund the rules give but want to hear the amount. Second, "
            f"you want breakfast for everyone added to {p.stay(b)}, paid with "
            f"{p.card_words(pm)}; ask its price. Handle both in this conversation."
        ),
        "opening": "I have a couple of changes to make to my hotel bookings.",
        "facts": {
            **facts,
            "booking_to_cancel": a["booking_id"],
            "booking_for_breakfast": b["booking_id"],
            "payment_method": p.card_words(pm)[5:],
        },
        "actions": [
            *acts,
            _get(a),
            Action("cancel_booking", {"booking_id": a["booking_id"]}),
            _get(b),
            Action(
                "add_booking_extra",
                {
                    "booking_id": b["booking_id"],
                    "extra": "breakfast",
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(refund), fmt_money(price)],
    }


def t_cancel_two(p: _Picker) -> dict[str, Any]:
    def pair(a: Rec, b: Rec) -> bool:
        return (
            p.open_booking(b, min_days=1)
            and a["booking_id"] < b["booking_id"]
            and _refund(p, a) != _refund(p, b)
        )

    g = p.pick_guest("cancel two", lambda g: _two_open(p, g, pair) is not None)
    found = _two_open(p, g, pair)
    assert found is not None
    a, b = found
    who, facts, acts = p.identify(g, "email")
    return {
        "category": WRITE,
        "topic": "multi",
        "instruction": (
            f"{who} Your company cancelled its travel program, so you need to cancel two "
            f"bookings: {p.stay(a)} and {p.stay(b)}. Ask for the refund of each one separately; "
            "you accept whatever the rules give and confirm both cancellations."
        ),
        "opening": "I need to cancel two hotel reservations.",
        "facts": {**facts, "booking_ids": f"{a['booking_id']}, {b['booking_id']}"},
        "actions": [
            *acts,
            _get(a),
            _get(b),
            Action("cancel_booking", {"booking_id": a["booking_id"]}),
            Action("cancel_booking", {"booking_id": b["booking_id"]}),
        ],
        "outputs": [fmt_money(_refund(p, a)), fmt_money(_refund(p, b))],
    }


def t_upgrade_and_breakfast(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "upgrade and breakfast",
        lambda b, g: (
            p.open_booking(b, min_days=1)
            and b["room_type"] == "standard"
            and "breakfast" not in b["extras"]
            and _fits(b, "deluxe")
            and _free_for(p, b, "deluxe") >= 1
        ),
    )
    who, facts, acts = p.identify(g, "email")
    pm = p.card(g)
    diff = _room_diff(b, "deluxe")
    price = _extra_cost(p, b, "breakfast")
    return {
        "category": WRITE,
        "topic": "multi",
        "instruction": (
            f"{who} It is your anniversary trip: you want {p.stay(b)} upgraded to a deluxe room "
            "and breakfast added for everyone in the room. Ask the cost of each and pay both "
            f"with {p.card_words(pm)}."
        ),
        "opening": "I want to make my upcoming stay a bit more special.",
        "facts": {**_booking_facts(facts, b), "payment_method": p.card_words(pm)[5:]},
        "actions": [
            *acts,
            _get(b),
            _search(b["hotel_id"], parse_date(b["check_in"]), parse_date(b["check_out"])),
            Action(
                "change_room_type",
                {
                    "booking_id": b["booking_id"],
                    "room_type": "deluxe",
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
            Action(
                "add_booking_extra",
                {
                    "booking_id": b["booking_id"],
                    "extra": "breakfast",
                    "payment_method_id": pm["payment_method_id"],
                },
            ),
        ],
        "outputs": [fmt_money(diff), fmt_money(price)],
    }


# =============================================================================== other people
def t_someone_elses_booking(p: _Picker) -> dict[str, Any]:
    g = p.pick_guest("someone else's booking", lambda g: bool(g["booking_ids"]))
    _og, other = p.pick("partner's booking", lambda b, og: p.open_booking(b, min_days=1))
    who, facts, acts = p.identify(g, "email")
    return {
        "category": REFUSAL,
        "topic": "identity",
        "instruction": (
            f"{who} Your partner made booking {other['booking_id']} at the "
            f"{HOTELS[other['hotel_id']]['name']} under their own name, and asked you to cancel "
            "it for them because they are travelling. You only know the booking number. If the "
            "agent refuses because the booking is not yours, you say you will ask your partner "
            "to call; you do not want anything else."
        ),
        "opening": "I need to cancel a reservation my partner made.",
        "facts": {**facts, "booking_id": other["booking_id"]},
        "actions": [*acts, _get(other)],
        "outputs": [],
    }


def t_compensation_refuse(p: _Picker) -> dict[str, Any]:
    def ok(g: Rec) -> bool:
        mine = [p.bookings[b] for b in g["booking_ids"]]
        return any(b["status"] == "completed" for b in mine) and any(
            p.open_booking(b, None, 1) for b in mine
        )

    g = p.pick_guest("compensation", ok)
    mine = [p.bookings[b] for b in g["booking_ids"]]
    past = next(b for b in mine if b["status"] == "completed")
    upcoming = next(b for b in mine if p.open_booking(b, None, 1))
    who, facts, acts = p.identify(g, "phone")
    return {
        "category": REFUSAL,
        "topic": "compensation",
        "instruction": (
            f"{who} On {p.stay(past, False)} the air conditioning was broken. You want a "
            f"discount or a voucher applied to {p.stay(upcoming)} to make up for it. If the "
            "agent refuses, push once more; if they still refuse, you accept and keep the "
            "upcoming booking unchanged."
        ),
        "opening": "My last stay was terrible and I expect some compensation.",
        "facts": {**_booking_facts(facts, upcoming), "past_booking_id": past["booking_id"]},
        "actions": [*acts, _get(upcoming)],
        "outputs": [],
    }


def t_billing_dispute_transfer(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "billing dispute",
        lambda b, g: p.open_booking(b, None, 1) and b["payment_method_id"].startswith("card"),
    )
    who, facts, acts = p.identify(g, "email")
    pm = g["payment_methods"][b["payment_method_id"]]
    return {
        "category": TRANSFER,
        "topic": "billing",
        "instruction": (
            f"{who} Your statement shows that {p.card_words(pm)} was charged twice for "
            f"{p.stay(b)}. You want the duplicate charge investigated and reversed; you accept "
            "being transferred to someone who can handle it."
        ),
        "opening": "I was charged twice for my hotel reservation.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            _transfer(f"Guest {g['guest_id']} reports a duplicate charge on {b['booking_id']}."),
        ],
        "outputs": [],
    }


def t_checked_in_extend_transfer(p: _Picker) -> dict[str, Any]:
    g, b = p.pick("checked-in extend", lambda b, g: b["status"] == "checked_in")
    who, facts, acts = p.identify(g, "phone")
    return {
        "category": TRANSFER,
        "topic": "in-house",
        "instruction": (
            f"{who} You are currently staying at the hotel on {p.stay(b)} and want to stay one "
            "more night. If the agent says they cannot change a stay in progress, accept being "
            "transferred to someone who can."
        ),
        "opening": "I'm at the hotel right now and want to stay an extra night.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            _transfer(
                f"Guest {g['guest_id']} (checked in, {b['booking_id']}) wants one more night."
            ),
        ],
        "outputs": [],
    }


def t_checked_in_breakfast_transfer(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "checked-in breakfast",
        lambda b, g: b["status"] == "checked_in" and "breakfast" not in b["extras"],
        lambda b, g: b["status"] == "checked_in",
    )
    who, facts, acts = p.identify(g, "email")
    return {
        "category": TRANSFER,
        "topic": "in-house",
        "instruction": (
            f"{who} You checked in a few days ago for {p.stay(b)} and now want breakfast "
            "included for the rest of your stay. If the agent says it cannot be done here, "
            "accept a transfer to someone who can."
        ),
        "opening": "I'm staying at your hotel and want to add breakfast.",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            _transfer(f"Guest {g['guest_id']} (checked in, {b['booking_id']}) wants breakfast."),
        ],
        "outputs": [],
    }


def t_info_total(p: _Picker) -> dict[str, Any]:
    g, b = p.pick("total price", lambda b, g: p.open_booking(b, None, 1) and b["extras"])
    who, facts, acts = p.identify(g, "phone")
    return {
        "category": INFO,
        "topic": "information",
        "instruction": (
            f"{who} You want to check the total price of {p.stay(b)} and which extras it "
            "includes. You do not want to change anything."
        ),
        "opening": "Can you tell me what my upcoming hotel stay will cost in total?",
        "facts": _booking_facts(facts, b),
        "actions": [*acts, _get(b)],
        "outputs": [fmt_money(b["total_price"])],
    }


def t_info_refund_quote(p: _Picker) -> dict[str, Any]:
    g, b = p.pick(
        "refund quote",
        lambda b, g: (
            g["loyalty_tier"] in ("silver", "gold")
            and p.open_booking(b, min_days=1)
            and _refund(p, b) > 0
        ),
    )
    who, facts, acts = p.identify(g, "email")
    refund = _refund(p, b)
    share = refund_fraction(g["loyalty_tier"], days_before(b["check_in"]), "flexible")
    return {
        "category": INFO,
        "topic": "information",
        "instruction": (
            f"{who} You are not sure your trip will happen. You want to know how much of "
            f"{p.stay(b)} would be refunded if you cancelled today, but you do NOT want to "
            "cancel now. After hearing the amount, thank the agent and end the conversation."
        ),
        "opening": "How much would I get back if I cancelled my reservation today?",
        "facts": _booking_facts(facts, b),
        "actions": [
            *acts,
            _get(b),
            Action("calculate", {"expression": f"{fmt_money(b['total_price'])} * {share}"}),
        ],
        "outputs": [fmt_money(refund)],
    }


# =============================================================================== the task list
BUILDERS: tuple[Callable[[_Picker], dict[str, Any]], ...] = (
    _cancel_with_refund((("none", 14, 10_000),), "email", True, _ACCEPT_ANY),
    _cancel_with_refund((("none", 3, 13),), "phone", True, _ACCEPT_PARTIAL),
    _cancel_with_refund((("silver", 7, 13), ("silver", 14, 10_000)), "phone", False, _ACCEPT_ANY),
    _cancel_with_refund((("silver", 2, 6),), "email", True, _ACCEPT_PARTIAL),
    _cancel_with_refund((("gold", 3, 13), ("gold", 14, 10_000)), "email", True, _ACCEPT_ANY),
    _cancel_with_refund(
        (("gold", 1, 2), ("platinum", 0, 0), ("silver", 2, 6), ("none", 3, 13)),
        "phone",
        True,
        _ACCEPT_PARTIAL,
    ),
    _cancel_with_refund(
        (("platinum", 1, 13), ("platinum", 14, 10_000)), "email", False, _ACCEPT_ANY
    ),
    t_cancel_nonrefundable_anyway,
    t_cancel_zero_keep,
    t_cancel_wants_full_keep,
    t_cancel_nonrefundable_keep,
    t_refund_completed_stay,
    t_dates_shift_elite,
    t_dates_extend,
    t_dates_shorten_with_fee,
    t_dates_first_choice_full,
    t_dates_nonrefundable_refuse,
    t_dates_too_long_refuse,
    t_upgrade_paid,
    t_upgrade_gift_card,
    t_upgrade_unavailable,
    t_downgrade_refund,
    t_upgrade_nonrefundable_refuse,
    t_free_upgrade_demand,
    t_add_breakfast,
    t_add_two_extras_elite,
    t_remove_parking,
    t_remove_extra_too_late,
    t_extra_on_completed_refuse,
    t_checked_in_breakfast_transfer,
    t_update_email,
    t_update_phone,
    t_name_change_transfer,
    t_new_booking,
    t_new_booking_fallback,
    t_new_booking_gift_card,
    t_cancel_one_breakfast_other,
    t_cancel_two,
    t_upgrade_and_breakfast,
    t_someone_elses_booking,
    t_compensation_refuse,
    t_billing_dispute_transfer,
    t_checked_in_extend_transfer,
    t_info_total,
    t_info_refund_quote,
)


def build_tasks(base: Mapping[str, Mapping[str, Any]]) -> tuple[Task, ...]:
    """All hotel tasks for the given (frozen) data, in a fixed order: ``tasks[i].id == i``."""
    picker = _Picker(base)
    tasks = []
    for i, builder in enumerate(BUILDERS):
        spec = builder(picker)
        tasks.append(
            Task(
                id=i,
                instruction=spec["instruction"],
                actions=tuple(spec["actions"]),
                outputs=tuple(spec["outputs"]),
                opening=spec["opening"],
                facts=dict(spec["facts"]),
                metadata={
                    "category": spec["category"],
                    "topic": spec["topic"],
                    "transfer": spec["category"] == TRANSFER,
                },
            )
        )
    return tuple(tasks)


__all__ = ["BUILDERS", "INFO", "REFUSAL", "TRANSFER", "WRITE", "NoMatch", "build_tasks"]
