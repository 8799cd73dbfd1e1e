"""Seeded, fully offline data for the hotel domain, and the pricing rules shared by tools and tasks.

Everything here is deterministic: :func:`generate` draws from its own ``random.Random(seed)``
and never touches the global generator. Dates are ISO strings (``YYYY-MM-DD``) relative to the
fixed :data:`TODAY` that the policy states.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

DEFAULT_SEED = 20250616

#: the domain's "today" (stated in policy.md; keep both in sync)
TODAY = date(2025, 6, 16)

TIERS = ("none", "silver", "gold", "platinum")
ROOM_TYPES = ("standard", "deluxe", "suite")
EXTRAS = ("breakfast", "parking", "late_checkout")
ACTIVE_STATUSES = frozenset({"confirmed", "checked_in"})

BREAKFAST_PER_ADULT_NIGHT = 19.0
PARKING_PER_NIGHT = 24.0
LATE_CHECKOUT_FEE = 40.0
DATE_CHANGE_FEE = 50.0
MAX_NIGHTS = 14
NON_REFUNDABLE_FACTOR = 0.85

#: (tier) -> (minimum days before check-in for a full refund, minimum days for a half refund)
REFUND_BANDS: Mapping[str, tuple[int, int]] = {
    "none": (14, 3),
    "silver": (7, 2),
    "gold": (3, 1),
    "platinum": (1, 0),
}

#: hotel id -> static description; room types map to (nightly rate, max adults, rooms)
HOTELS: Mapping[str, dict[str, Any]] = {
    "H101": {
        "name": "Alder Point Inn",
        "city": "Portland",
        "address": "412 Riverside Avenue, Portland",
        "rooms": {"standard": (139.0, 2, 7), "deluxe": (189.0, 3, 4), "suite": (319.0, 4, 2)},
    },
    "H102": {
        "name": "Saltmarsh Grand Hotel",
        "city": "Charleston",
        "address": "9 Tidewater Street, Charleston",
        "rooms": {"standard": (169.0, 2, 8), "deluxe": (229.0, 3, 5), "suite": (389.0, 4, 2)},
    },
    "H103": {
        "name": "Copperline Hotel",
        "city": "Denver",
        "address": "1770 Foundry Road, Denver",
        "rooms": {"standard": (129.0, 2, 7), "deluxe": (179.0, 3, 4), "suite": (289.0, 4, 2)},
    },
    "H104": {
        "name": "Juniper Cove Lodge",
        "city": "Asheville",
        "address": "55 Laurel Ridge Lane, Asheville",
        "rooms": {"standard": (149.0, 2, 6), "deluxe": (209.0, 3, 3), "suite": (349.0, 4, 1)},
    },
}

FIRST_NAMES = (
    "Amara", "Bastian", "Celeste", "Dorian", "Elif", "Farid", "Greta", "Hollis", "Ines", "Jonah",
    "Keiko", "Lorenzo", "Maren", "Nikhil", "Odette", "Pavel", "Quinn", "Rosalind", "Soren", "Talia",
    "Ulric", "Vesna", "Wendell", "Ximena", "Yusuf", "Zora", "Anselm", "Beatrix", "Cormac",
    "Delphine",
    "Emeka", "Freya", "Gideon", "Hana", "Isidore", "Juno", "Kasimir", "Leona", "Matteo", "Nadia",
)  # fmt: skip

LAST_NAMES = (
    "Abernathy", "Brightwater", "Castellano", "Dunmore", "Eriksen", "Fairweather", "Galloway",
    "Hargreave", "Iwasaki", "Jovanovic", "Kettering", "Lindqvist", "Marchetti", "Nakamura",
    "Okonkwo", "Pemberton", "Quintero", "Radcliffe", "Sandoval", "Thornbury", "Underhill",
    "Valdivia", "Whitcombe", "Yarborough", "Zielinski", "Ashdown", "Blackwood", "Coverdale",
    "Delacroix", "Ellsworth", "Fontaine", "Greenhalgh", "Holloway", "Ingram", "Kowalczyk",
)  # fmt: skip

AREA_CODES = ("503", "843", "720", "828", "212", "415", "617", "312", "206", "512")
CARD_BRANDS = ("visa", "mastercard", "amex")


# ----------------------------------------------------------------------------- date helpers
def parse_date(text: str) -> date:
    return date.fromisoformat(text)


def iso(d: date) -> str:
    return d.isoformat()


def days_before(check_in: str, today: date = TODAY) -> int:
    """Calendar days from ``today`` to ``check_in`` (0 = check-in today)."""
    return (parse_date(check_in) - today).days


def money(x: float) -> float:
    return round(x + 0.0, 2)


def fmt_money(x: float) -> str:
    return f"{x:.2f}"


# ----------------------------------------------------------------------------- pricing rules
def extra_price(extra: str, tier: str, nights: int, adults: int) -> float:
    """Price of one extra for a whole stay."""
    if extra == "breakfast":
        return money(BREAKFAST_PER_ADULT_NIGHT * adults * nights)
    if extra == "parking":
        return money(PARKING_PER_NIGHT * nights)
    if extra == "late_checkout":
        return 0.0 if tier in ("gold", "platinum") else LATE_CHECKOUT_FEE
    raise KeyError(extra)


def price_booking(
    nightly_rate: float, nights: int, adults: int, extras: Iterable[str], tier: str
) -> tuple[float, float, float]:
    """(room total, extras total, total)."""
    room = money(nightly_rate * nights)
    ext = money(sum(extra_price(e, tier, nights, adults) for e in extras))
    return room, ext, money(room + ext)


def refund_fraction(tier: str, days: int, rate_plan: str) -> float:
    """Share of the booking total refunded on cancellation."""
    if rate_plan != "flexible":
        return 0.0
    full, half = REFUND_BANDS.get(tier, REFUND_BANDS["none"])
    if days >= full:
        return 1.0
    if days >= half:
        return 0.5
    return 0.0


def date_change_fee(tier: str, days: int) -> float:
    if tier in ("gold", "platinum") or days >= 7:
        return 0.0
    return DATE_CHANGE_FEE


def list_rate(hotel_id: str, room_type: str) -> float:
    return HOTELS[hotel_id]["rooms"][room_type][0]


def max_adults(hotel_id: str, room_type: str) -> int:
    return HOTELS[hotel_id]["rooms"][room_type][1]


def room_count(hotel_id: str, room_type: str) -> int:
    return HOTELS[hotel_id]["rooms"][room_type][2]


def rooms_free(
    bookings: Iterable[Mapping[str, Any]],
    hotel_id: str,
    room_type: str,
    start: date,
    end: date,
    exclude: str | None = None,
) -> int:
    """Rooms of one type free on every night of ``[start, end)``, given the bookings.

    Only active bookings (confirmed or checked in) occupy rooms.
    """
    nights = (end - start).days
    used = [0] * nights
    for rec in bookings:
        if (
            rec is None
            or rec["status"] not in ACTIVE_STATUSES
            or rec["hotel_id"] != hotel_id
            or rec["room_type"] != room_type
            or rec["booking_id"] == exclude
        ):
            continue
        a = (parse_date(rec["check_in"]) - start).days
        b = (parse_date(rec["check_out"]) - start).days
        for i in range(max(a, 0), min(b, nights)):
            used[i] += 1
    return room_count(hotel_id, room_type) - (max(used) if used else 0)


# ----------------------------------------------------------------------------- generator
def _hotels_table() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for hid, h in HOTELS.items():
        out[hid] = {
            "hotel_id": hid,
            "name": h["name"],
            "city": h["city"],
            "address": h["address"],
            "check_in_time": "15:00",
            "check_out_time": "11:00",
            "room_types": {
                rt: {"nightly_rate": rate, "max_adults": cap, "rooms": n}
                for rt, (rate, cap, n) in h["rooms"].items()
            },
            "extras": {
                "breakfast": f"{fmt_money(BREAKFAST_PER_ADULT_NIGHT)} per adult per night",
                "parking": f"{fmt_money(PARKING_PER_NIGHT)} per night",
                "late_checkout": f"{fmt_money(LATE_CHECKOUT_FEE)} per stay "
                "(free for gold and platinum members)",
            },
        }
    return out


def _pick_weighted(rng: random.Random, items: tuple[Any, ...], weights: tuple[float, ...]) -> Any:
    return rng.choices(items, weights=weights, k=1)[0]


def generate(seed: int = DEFAULT_SEED, n_guests: int = 160, n_bookings: int = 380) -> dict:
    """Plain (mutable) tables: ``hotels``, ``guests``, ``bookings``. Same seed, same data."""
    rng = random.Random(seed)
    hotels = _hotels_table()

    guests: dict[str, dict[str, Any]] = {}
    emails: set[str] = set()
    phones: set[str] = set()
    pm_ids: set[str] = set()
    guest_ids = sorted(rng.sample(range(10000, 99999), n_guests))
    for num in guest_ids:
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(LAST_NAMES)
        while True:
            email = f"{first}.{last}{rng.randint(1, 99)}@example.com".lower()
            if email not in emails:
                emails.add(email)
                break
        while True:
            phone = f"{rng.choice(AREA_CODES)}-555-{rng.randint(0, 9999):04d}"
            if phone not in phones:
                phones.add(phone)
                break
        methods: dict[str, dict[str, Any]] = {}
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            while True:
                last4 = f"{rng.randint(0, 9999):04d}"
                pid = f"card_{last4}"
                if pid not in pm_ids:
                    pm_ids.add(pid)
                    break
            methods[pid] = {
                "payment_method_id": pid,
                "type": "credit_card",
                "brand": rng.choice(CARD_BRANDS),
                "last_four": last4,
            }
        if rng.random() < 0.35:
            while True:
                pid = f"gift_{rng.randint(0, 9999):04d}"
                if pid not in pm_ids:
                    pm_ids.add(pid)
                    break
            methods[pid] = {
                "payment_method_id": pid,
                "type": "gift_card",
                "balance": float(rng.randrange(60, 520, 10)),
            }
        gid = f"G{num}"
        guests[gid] = {
            "guest_id": gid,
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "loyalty_tier": _pick_weighted(rng, TIERS, (0.38, 0.27, 0.22, 0.13)),
            "payment_methods": methods,
            "booking_ids": [],
        }

    bookings: dict[str, dict[str, Any]] = {}
    booking_nums = rng.sample(range(100000, 900000), n_bookings)
    gids = list(guests)
    hotel_ids = list(hotels)
    for num in booking_nums:
        guest = guests[rng.choice(gids)]
        hid = rng.choice(hotel_ids)
        room_type = _pick_weighted(rng, ROOM_TYPES, (0.55, 0.3, 0.15))
        nights = _pick_weighted(rng, (1, 2, 3, 4, 5, 6, 7), (2, 4, 4, 3, 2, 1, 1))
        start = TODAY + timedelta(days=rng.randint(-40, 70))
        end = start + timedelta(days=nights)
        # a quarter of the draws cluster on the next two weeks so that every refund band is
        # busy, and a few are stays in progress today
        cluster = rng.random()
        if cluster < 0.25:
            start = TODAY + timedelta(days=rng.randint(0, 13))
            end = start + timedelta(days=nights)
        elif cluster < 0.3:
            start = TODAY - timedelta(days=rng.randint(1, 3))
            end = start + timedelta(days=max(nights, 4))
            nights = max(nights, 4)
        if end <= TODAY:
            status = "cancelled" if rng.random() < 0.1 else "completed"
        elif start < TODAY:
            status = "checked_in"
        else:
            status = "cancelled" if rng.random() < 0.1 else "confirmed"
        bid = f"HB{num}"
        if status != "cancelled" and rooms_free(bookings.values(), hid, room_type, start, end) < 1:
            continue
        cap = max_adults(hid, room_type)
        adults = min(cap, _pick_weighted(rng, (1, 2, 3, 4), (3, 6, 1, 1)))
        rate_plan = "non_refundable" if rng.random() < 0.22 else "flexible"
        rate = list_rate(hid, room_type)
        if rate_plan == "non_refundable":
            rate = float(round(rate * NON_REFUNDABLE_FACTOR))
        extras = [
            e
            for e, p in (("breakfast", 0.35), ("parking", 0.3), ("late_checkout", 0.15))
            if rng.random() < p
        ]
        tier = guest["loyalty_tier"]
        room_total, extras_total, total = price_booking(rate, nights, adults, extras, tier)
        methods = list(guest["payment_methods"].values())
        usable = [m for m in methods if m["type"] == "credit_card" or m.get("balance", 0) >= total]
        pm = rng.choice(usable)["payment_method_id"]
        rec: dict[str, Any] = {
            "booking_id": bid,
            "guest_id": guest["guest_id"],
            "hotel_id": hid,
            "room_type": room_type,
            "rate_plan": rate_plan,
            "check_in": iso(start),
            "check_out": iso(end),
            "nights": nights,
            "adults": adults,
            "nightly_rate": rate,
            "extras": extras,
            "room_total": room_total,
            "extras_total": extras_total,
            "total_price": total,
            "payment_method_id": pm,
            "status": status,
            "transactions": [
                {"type": "charge", "amount": total, "payment_method_id": pm, "note": "booking"}
            ],
        }
        if status == "cancelled":
            share = rng.choice((1.0, 0.5)) if rate_plan == "flexible" else 0.0
            refund = money(total * share)
            rec["refund_amount"] = refund
            rec["transactions"].append(
                {
                    "type": "refund",
                    "amount": refund,
                    "payment_method_id": pm,
                    "note": "cancellation",
                }
            )
        bookings[bid] = rec
        guest["booking_ids"].append(bid)

    for guest in guests.values():
        guest["booking_ids"].sort(key=lambda b: (bookings[b]["check_in"], b))
    return {"hotels": hotels, "guests": guests, "bookings": bookings}
