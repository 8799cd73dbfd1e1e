"""The hotel domain's tools: OpenAI function schemas and the per-episode environment.

Tools enforce what the data itself makes impossible (unknown ids, wrong status, no free room,
too many adults for a room, a payment method that is not the guest's, an empty gift card) and
compute prices, fees and refunds. Judgement calls that the policy leaves to the agent (identity
checks, whose booking it is, non-refundable restrictions, the 14-night limit, no discounts) are
deliberately NOT enforced here: an agent that breaks them changes the state and loses the reward.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from emotau.core import ToolResult
from emotau.domains._base import Database, Environment, to_json
from emotau.domains.hotel.data import (
    ACTIVE_STATUSES,
    EXTRAS,
    ROOM_TYPES,
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

#: ids of bookings created during an episode: NEW_BOOKING_BASE + 1, + 2, ... (deterministic)
NEW_BOOKING_BASE = 900000
MAX_SEARCH_NIGHTS = 30


class ToolError(Exception):
    """An invalid call inside a tool; becomes ``ToolResult("Error: ...", error=True)``."""


# ----------------------------------------------------------------------------- tool specs
# name -> (description, {param: (type, required, description)}); type is "string", "integer"
# or "string[]". The OpenAI schemas and the argument checks are both built from this table.
_STR, _INT, _LIST = "string", "integer", "string[]"

SPECS: dict[str, tuple[str, dict[str, tuple[str, bool, str]]]] = {
    "find_guest_by_email": (
        "Find a guest profile by e-mail address. Returns the guest id.",
        {"email": (_STR, True, "The e-mail address on the guest's profile.")},
    ),
    "find_guest_by_name_and_phone": (
        "Find a guest profile by first name, last name and phone number. Returns the guest id.",
        {
            "first_name": (_STR, True, "The guest's first name."),
            "last_name": (_STR, True, "The guest's last name."),
            "phone": (_STR, True, "The phone number on the profile, e.g. 503-555-0142."),
        },
    ),
    "get_guest_details": (
        "Get a guest profile: name, contact details, loyalty tier, payment methods and the ids "
        "of all the guest's bookings.",
        {"guest_id": (_STR, True, "The guest id, e.g. G12345.")},
    ),
    "get_booking_details": (
        "Get a booking: guest, hotel, room type, rate plan, dates, adults, nightly rate, "
        "extras, totals, payment method, status and transactions.",
        {"booking_id": (_STR, True, "The booking id, e.g. HB123456.")},
    ),
    "list_hotels": ("List all hotels with their id, name and city.", {}),
    "get_hotel_details": (
        "Get a hotel's address, room types (nightly rate, maximum adults, number of rooms) "
        "and extras prices.",
        {"hotel_id": (_STR, True, "The hotel id, e.g. H101.")},
    ),
    "search_availability": (
        "Number of free rooms of each room type at a hotel for every night from check_in to "
        "the night before check_out, with nightly rates. Existing bookings, including the "
        "customer's own, count as occupied.",
        {
            "hotel_id": (_STR, True, "The hotel id."),
            "check_in": (_STR, True, "Arrival date, YYYY-MM-DD."),
            "check_out": (_STR, True, "Departure date, YYYY-MM-DD (after check_in)."),
        },
    ),
    "create_booking": (
        "Create a new flexible-rate booking for a guest and charge its full total to one of "
        "the guest's payment methods. Returns the new booking id and the total.",
        {
            "guest_id": (_STR, True, "The guest id."),
            "hotel_id": (_STR, True, "The hotel id."),
            "room_type": (_STR, True, "One of: standard, deluxe, suite."),
            "check_in": (_STR, True, "Arrival date, YYYY-MM-DD."),
            "check_out": (_STR, True, "Departure date, YYYY-MM-DD."),
            "adults": (_INT, True, "Number of adults staying in the room."),
            "payment_method_id": (_STR, True, "A payment method id from the guest's profile."),
            "extras": (_LIST, False, "Extras to include: breakfast, parking, late_checkout."),
        },
    ),
    "cancel_booking": (
        "Cancel a confirmed booking. The refund is computed from the loyalty tier, the rate "
        "plan and the days before check-in, and goes to the booking's original payment method.",
        {"booking_id": (_STR, True, "The booking id.")},
    ),
    "change_booking_dates": (
        "Move a confirmed booking to new dates at the same hotel, room type and nightly rate. "
        "Any date-change fee and any price increase are charged to payment_method_id; a price "
        "decrease is refunded to the booking's original payment method.",
        {
            "booking_id": (_STR, True, "The booking id."),
            "check_in": (_STR, True, "New arrival date, YYYY-MM-DD."),
            "check_out": (_STR, True, "New departure date, YYYY-MM-DD."),
            "payment_method_id": (_STR, True, "Payment method for any fee or price increase."),
        },
    ),
    "change_room_type": (
        "Move a confirmed booking to another room type at the same hotel for the same dates, "
        "at that room type's current nightly rate. A price increase is charged to "
        "payment_method_id; a decrease is refunded to the booking's original payment method.",
        {
            "booking_id": (_STR, True, "The booking id."),
            "room_type": (_STR, True, "The new room type: standard, deluxe or suite."),
            "payment_method_id": (_STR, True, "Payment method for a price increase."),
        },
    ),
    "add_booking_extra": (
        "Add one extra (breakfast, parking or late_checkout) to a confirmed booking and charge "
        "its price for the whole stay to payment_method_id.",
        {
            "booking_id": (_STR, True, "The booking id."),
            "extra": (_STR, True, "One of: breakfast, parking, late_checkout."),
            "payment_method_id": (_STR, True, "Payment method for the extra's price."),
        },
    ),
    "remove_booking_extra": (
        "Remove one extra from a confirmed booking and refund its price to the booking's "
        "original payment method.",
        {
            "booking_id": (_STR, True, "The booking id."),
            "extra": (_STR, True, "One of: breakfast, parking, late_checkout."),
        },
    ),
    "update_guest_contact": (
        "Change the e-mail address and/or the phone number on a guest profile. Give at least "
        "one of them.",
        {
            "guest_id": (_STR, True, "The guest id."),
            "email": (_STR, False, "The new e-mail address."),
            "phone": (_STR, False, "The new phone number, ten digits, e.g. 503-555-0142."),
        },
    ),
    "calculate": (
        "Evaluate an arithmetic expression (numbers, + - * / // % **, parentheses). "
        "The result is rounded to two decimals.",
        {"expression": (_STR, True, "The expression, e.g. (189 - 139) * 3.")},
    ),
    "transfer_to_human_agents": (
        "Transfer the customer to a human agent, with a short summary of the issue. Only in the "
        "cases the policy lists. This ends your part of the conversation.",
        {"summary": (_STR, True, "A short summary of the customer and the issue.")},
    ),
}

WRITE_TOOLS = frozenset(
    {
        "create_booking",
        "cancel_booking",
        "change_booking_dates",
        "change_room_type",
        "add_booking_extra",
        "remove_booking_extra",
        "update_guest_contact",
    }
)


def _schema(name: str) -> dict[str, Any]:
    desc, params = SPECS[name]
    props: dict[str, Any] = {}
    for pname, (ptype, _req, pdesc) in params.items():
        if ptype == _LIST:
            props[pname] = {"type": "array", "items": {"type": "string"}, "description": pdesc}
        else:
            props[pname] = {"type": ptype, "description": pdesc}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": desc,
            "parameters": {
                "type": "object",
                "properties": props,
                "required": [p for p, (_t, req, _d) in params.items() if req],
                "additionalProperties": False,
            },
        },
    }


TOOL_SCHEMAS: tuple[dict[str, Any], ...] = tuple(_schema(n) for n in SPECS)


def _check_args(name: str, arguments: Any) -> dict[str, Any]:
    params = SPECS[name][1]
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        raise ToolError(f"arguments of {name} must be a JSON object")
    unknown = [k for k in arguments if k not in params]
    if unknown:
        raise ToolError(f"{name} got unexpected argument(s): {', '.join(map(str, unknown))}")
    out: dict[str, Any] = {}
    for pname, (ptype, required, _d) in params.items():
        value = arguments.get(pname)
        if value is None:
            if required:
                raise ToolError(f"{name} requires argument '{pname}'")
            continue
        if ptype == _STR:
            if not isinstance(value, str):
                raise ToolError(f"'{pname}' must be a string")
            value = value.strip()
        elif ptype == _INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ToolError(f"'{pname}' must be an integer")
        elif not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ToolError(f"'{pname}' must be a list of strings")
        out[pname] = value
    return out


# ----------------------------------------------------------------------------- calculate
_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_EXPR = 300


def safe_calculate(expression: str) -> float:
    """Evaluate plain arithmetic with an AST whitelist (no names, calls or attributes)."""
    if len(expression) > _MAX_EXPR:
        raise ToolError("expression is too long")
    text = expression.replace("$", "").replace(",", "").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"not a valid arithmetic expression: {expression!r}") from None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ToolError("only numbers are allowed")
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 1e6):
                raise ToolError("exponent too large")
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand))
        raise ToolError("only numbers, + - * / // % ** and parentheses are allowed")

    try:
        value = ev(tree)
        if isinstance(value, complex) or not math.isfinite(value):
            raise ToolError("the result is not a finite number")
        return float(value)
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except (OverflowError, ValueError, TypeError, RecursionError):
        raise ToolError("the result is not a finite number") from None


# ----------------------------------------------------------------------------- environment
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _date(text: str, what: str) -> date:
    try:
        return parse_date(text)
    except ValueError:
        raise ToolError(f"{what} must be a date in the form YYYY-MM-DD, got {text!r}") from None


class HotelIndex:
    """Lookup tables over the frozen base, built once per domain instance."""

    __slots__ = ("by_email", "by_phone", "by_slot")

    def __init__(self, base: Mapping[str, Mapping[str, Any]]) -> None:
        self.by_email: dict[str, str] = {}
        self.by_phone: dict[str, list[str]] = {}
        for gid, g in base["guests"].items():
            self.by_email[g["email"].lower()] = gid
            self.by_phone.setdefault(_digits(g["phone"]), []).append(gid)
        # (hotel, room type) -> ids of base bookings that occupy a room
        self.by_slot: dict[tuple[str, str], tuple[str, ...]] = {}
        slots: dict[tuple[str, str], list[str]] = {}
        for bid, b in base["bookings"].items():
            if b["status"] in ACTIVE_STATUSES:
                slots.setdefault((b["hotel_id"], b["room_type"]), []).append(bid)
        self.by_slot = {k: tuple(v) for k, v in slots.items()}


class HotelEnvironment(Environment):
    """One episode's state: a copy-on-write :class:`Database` over the shared frozen base."""

    __slots__ = ("_created", "_index", "_touched_bookings", "_touched_guests", "db")

    def __init__(self, base: Mapping[str, Mapping[str, Any]], index: HotelIndex) -> None:
        self.db = Database(base)
        self._index = index
        self._touched_bookings: set[str] = set()
        self._touched_guests: set[str] = set()
        self._created = 0

    # -------------------------------------------------------------- Environment API
    def fingerprint(self) -> str:
        return self.db.fingerprint()

    def execute(self, name: str, arguments: Mapping[str, Any]) -> ToolResult:
        try:
            handler = _HANDLERS.get(name) if isinstance(name, str) else None
            if handler is None:
                return ToolResult(f"Error: unknown tool {name!r}", error=True)
            return ToolResult(handler(self, **_check_args(name, arguments)))
        except ToolError as exc:
            return ToolResult(f"Error: {exc}", error=True)
        except Exception as exc:  # a bug must not end the episode; report it as a tool error
            return ToolResult(f"Error: {name} failed ({type(exc).__name__})", error=True)

    # -------------------------------------------------------------- helpers
    def _guest(self, guest_id: str) -> Mapping[str, Any]:
        g = self.db.get("guests", guest_id)
        if g is None:
            raise ToolError(f"guest {guest_id!r} not found")
        return g

    def _booking(self, booking_id: str) -> Mapping[str, Any]:
        b = self.db.get("bookings", booking_id)
        if b is None:
            raise ToolError(f"booking {booking_id!r} not found")
        return b

    def _hotel(self, hotel_id: str) -> Mapping[str, Any]:
        h = self.db.get("hotels", hotel_id)
        if h is None:
            raise ToolError(f"hotel {hotel_id!r} not found")
        return h

    def _confirmed(self, booking_id: str) -> Mapping[str, Any]:
        b = self._booking(booking_id)
        if b["status"] != "confirmed":
            raise ToolError(f"booking {booking_id} is {b['status']}; only confirmed bookings")
        return b

    def _free(
        self, hotel_id: str, room_type: str, start: date, end: date, exclude: str | None = None
    ) -> int:
        ids = set(self._index.by_slot.get((hotel_id, room_type), ()))
        ids.update(self._touched_bookings)
        return rooms_free(
            (self.db.get("bookings", b) for b in ids), hotel_id, room_type, start, end, exclude
        )

    def _stay(self, check_in: str, check_out: str) -> tuple[date, date]:
        start = _date(check_in, "check_in")
        end = _date(check_out, "check_out")
        if end <= start:
            raise ToolError("check_out must be after check_in")
        if start < TODAY:
            raise ToolError(f"check_in {iso(start)} is in the past (today is {iso(TODAY)})")
        if (end - start).days > MAX_SEARCH_NIGHTS:
            raise ToolError(f"a stay can be at most {MAX_SEARCH_NIGHTS} nights in this system")
        return start, end

    def _charge(self, guest: Mapping[str, Any], pm_id: str, amount: float) -> None:
        """Validate a payment method of ``guest`` for ``amount`` (debit gift cards)."""
        pm = guest["payment_methods"].get(pm_id)
        if pm is None:
            raise ToolError(f"payment method {pm_id!r} is not on guest {guest['guest_id']}'s file")
        if pm["type"] == "gift_card" and amount > 0:
            if pm["balance"] < amount:
                raise ToolError(
                    f"gift card {pm_id} balance {fmt_money(pm['balance'])} is less than "
                    f"{fmt_money(amount)}"
                )
            self._edit_guest(guest["guest_id"])["payment_methods"][pm_id]["balance"] = money(
                pm["balance"] - amount
            )

    def _refund(self, guest_id: str, pm_id: str, amount: float) -> None:
        guest = self._guest(guest_id)
        pm = guest["payment_methods"].get(pm_id)
        if pm is not None and pm["type"] == "gift_card" and amount > 0:
            self._edit_guest(guest_id)["payment_methods"][pm_id]["balance"] = money(
                pm["balance"] + amount
            )

    def _edit_guest(self, guest_id: str) -> dict[str, Any]:
        self._touched_guests.add(guest_id)
        return self.db.edit("guests", guest_id)

    def _edit_booking(self, booking_id: str) -> dict[str, Any]:
        self._touched_bookings.add(booking_id)
        return self.db.edit("bookings", booking_id)

    def _check_pm_exists(self, guest: Mapping[str, Any], pm_id: str) -> None:
        if pm_id not in guest["payment_methods"]:
            raise ToolError(f"payment method {pm_id!r} is not on guest {guest['guest_id']}'s file")

    # -------------------------------------------------------------- read tools
    def find_guest_by_email(self, email: str) -> str:
        key = email.lower()
        for gid in (self._index.by_email.get(key), *sorted(self._touched_guests)):
            if gid is not None:
                g = self.db.get("guests", gid)
                if g is not None and g["email"].lower() == key:
                    return gid
        raise ToolError(f"no guest with e-mail {email!r}")

    def find_guest_by_name_and_phone(self, first_name: str, last_name: str, phone: str) -> str:
        digits = _digits(phone)
        candidates = [*self._index.by_phone.get(digits, ()), *sorted(self._touched_guests)]
        for gid in candidates:
            g = self.db.get("guests", gid)
            if (
                g is not None
                and _digits(g["phone"]) == digits
                and g["first_name"].lower() == first_name.lower()
                and g["last_name"].lower() == last_name.lower()
            ):
                return gid
        raise ToolError("no guest with that name and phone number")

    def get_guest_details(self, guest_id: str) -> str:
        return to_json(self._guest(guest_id))

    def get_booking_details(self, booking_id: str) -> str:
        return to_json(self._booking(booking_id))

    def list_hotels(self) -> str:
        return to_json(
            [
                {"hotel_id": h["hotel_id"], "name": h["name"], "city": h["city"]}
                for h in self.db.values("hotels")
            ]
        )

    def get_hotel_details(self, hotel_id: str) -> str:
        return to_json(self._hotel(hotel_id))

    def search_availability(self, hotel_id: str, check_in: str, check_out: str) -> str:
        hotel = self._hotel(hotel_id)
        start, end = self._stay(check_in, check_out)
        rooms = {
            rt: {
                "available": max(self._free(hotel_id, rt, start, end), 0),
                "nightly_rate": info["nightly_rate"],
                "max_adults": info["max_adults"],
            }
            for rt, info in hotel["room_types"].items()
        }
        return to_json(
            {
                "hotel_id": hotel_id,
                "check_in": iso(start),
                "check_out": iso(end),
                "nights": (end - start).days,
                "room_types": rooms,
            }
        )

    def calculate(self, expression: str) -> str:
        return fmt_money(safe_calculate(expression))

    def transfer_to_human_agents(self, summary: str) -> str:
        return "Transfer successful. A human agent will take over this conversation."

    # -------------------------------------------------------------- write tools
    def create_booking(
        self,
        guest_id: str,
        hotel_id: str,
        room_type: str,
        check_in: str,
        check_out: str,
        adults: int,
        payment_method_id: str,
        extras: list[str] | tuple[str, ...] = (),
    ) -> str:
        guest = self._guest(guest_id)
        self._hotel(hotel_id)
        if room_type not in ROOM_TYPES:
            raise ToolError(f"room_type must be one of {', '.join(ROOM_TYPES)}")
        start, end = self._stay(check_in, check_out)
        if adults < 1 or adults > max_adults(hotel_id, room_type):
            raise ToolError(
                f"a {room_type} room at {hotel_id} takes 1 to "
                f"{max_adults(hotel_id, room_type)} adults"
            )
        bad = [e for e in extras if e not in EXTRAS]
        if bad:
            raise ToolError(f"unknown extra(s) {bad}; allowed: {', '.join(EXTRAS)}")
        chosen = sorted(set(extras))
        self._check_pm_exists(guest, payment_method_id)
        if self._free(hotel_id, room_type, start, end) < 1:
            raise ToolError(f"no {room_type} room free at {hotel_id} for those dates")
        nights = (end - start).days
        rate = list_rate(hotel_id, room_type)
        room_total, extras_total, total = price_booking(
            rate, nights, adults, chosen, guest["loyalty_tier"]
        )
        self._charge(guest, payment_method_id, total)
        self._created += 1
        bid = f"HB{NEW_BOOKING_BASE + self._created}"
        while self.db.get("bookings", bid) is not None:  # base ids are below 900000; belt only
            self._created += 1
            bid = f"HB{NEW_BOOKING_BASE + self._created}"
        record = {
            "booking_id": bid,
            "guest_id": guest_id,
            "hotel_id": hotel_id,
            "room_type": room_type,
            "rate_plan": "flexible",
            "check_in": iso(start),
            "check_out": iso(end),
            "nights": nights,
            "adults": adults,
            "nightly_rate": rate,
            "extras": chosen,
            "room_total": room_total,
            "extras_total": extras_total,
            "total_price": total,
            "payment_method_id": payment_method_id,
            "status": "confirmed",
            "transactions": [
                {
                    "type": "charge",
                    "amount": total,
                    "payment_method_id": payment_method_id,
                    "note": "booking",
                }
            ],
        }
        self.db.insert("bookings", bid, record)
        self._touched_bookings.add(bid)
        self._edit_guest(guest_id)["booking_ids"].append(bid)
        return (
            f"Booking {bid} created: {room_type} at {hotel_id}, {iso(start)} to {iso(end)} "
            f"({nights} nights), total {fmt_money(total)} charged to {payment_method_id}."
        )

    def cancel_booking(self, booking_id: str) -> str:
        b = self._confirmed(booking_id)
        guest = self._guest(b["guest_id"])
        share = refund_fraction(guest["loyalty_tier"], days_before(b["check_in"]), b["rate_plan"])
        refund = money(b["total_price"] * share)
        rec = self._edit_booking(booking_id)
        rec["status"] = "cancelled"
        rec["refund_amount"] = refund
        pm = rec["payment_method_id"]
        rec["transactions"].append(
            {"type": "refund", "amount": refund, "payment_method_id": pm, "note": "cancellation"}
        )
        self._refund(b["guest_id"], pm, refund)
        return f"Booking {booking_id} cancelled. Refund of {fmt_money(refund)} issued to {pm}."

    def change_booking_dates(
        self, booking_id: str, check_in: str, check_out: str, payment_method_id: str
    ) -> str:
        b = self._confirmed(booking_id)
        guest = self._guest(b["guest_id"])
        self._check_pm_exists(guest, payment_method_id)
        start, end = self._stay(check_in, check_out)
        if iso(start) == b["check_in"] and iso(end) == b["check_out"]:
            raise ToolError("the new dates are the same as the current ones")
        if self._free(b["hotel_id"], b["room_type"], start, end, exclude=booking_id) < 1:
            raise ToolError(f"no {b['room_type']} room free at {b['hotel_id']} for those dates")
        tier = guest["loyalty_tier"]
        nights = (end - start).days
        fee = date_change_fee(tier, days_before(b["check_in"]))
        room_total, extras_total, total = price_booking(
            b["nightly_rate"], nights, b["adults"], b["extras"], tier
        )
        diff = money(total - b["total_price"])
        charge = money(fee + max(diff, 0.0))
        self._charge(guest, payment_method_id, charge)
        rec = self._edit_booking(booking_id)
        rec.update(
            check_in=iso(start),
            check_out=iso(end),
            nights=nights,
            room_total=room_total,
            extras_total=extras_total,
            total_price=total,
        )
        parts = []
        if fee:
            rec["transactions"].append(
                {
                    "type": "charge",
                    "amount": fee,
                    "payment_method_id": payment_method_id,
                    "note": "date change fee",
                }
            )
            parts.append(f"date change fee {fmt_money(fee)} charged to {payment_method_id}")
        if diff > 0:
            rec["transactions"].append(
                {
                    "type": "charge",
                    "amount": diff,
                    "payment_method_id": payment_method_id,
                    "note": "date change",
                }
            )
            parts.append(f"price difference {fmt_money(diff)} charged to {payment_method_id}")
        elif diff < 0:
            pm = rec["payment_method_id"]
            rec["transactions"].append(
                {"type": "refund", "amount": -diff, "payment_method_id": pm, "note": "date change"}
            )
            self._refund(b["guest_id"], pm, -diff)
            parts.append(f"price difference {fmt_money(-diff)} refunded to {pm}")
        money_text = "; ".join(parts) if parts else "nothing charged or refunded"
        return (
            f"Booking {booking_id} now {iso(start)} to {iso(end)} ({nights} nights), new total "
            f"{fmt_money(total)}; {money_text}."
        )

    def change_room_type(self, booking_id: str, room_type: str, payment_method_id: str) -> str:
        b = self._confirmed(booking_id)
        guest = self._guest(b["guest_id"])
        self._check_pm_exists(guest, payment_method_id)
        if room_type not in ROOM_TYPES:
            raise ToolError(f"room_type must be one of {', '.join(ROOM_TYPES)}")
        if room_type == b["room_type"]:
            raise ToolError(f"booking {booking_id} already has a {room_type} room")
        hid = b["hotel_id"]
        if b["adults"] > max_adults(hid, room_type):
            raise ToolError(f"a {room_type} room takes at most {max_adults(hid, room_type)} adults")
        start, end = parse_date(b["check_in"]), parse_date(b["check_out"])
        if self._free(hid, room_type, start, end) < 1:
            raise ToolError(f"no {room_type} room free at {hid} for the booking's dates")
        rate = list_rate(hid, room_type)
        nights = b["nights"]
        diff = money((rate - b["nightly_rate"]) * nights)
        if diff > 0:
            self._charge(guest, payment_method_id, diff)
        rec = self._edit_booking(booking_id)
        rec["room_type"] = room_type
        rec["nightly_rate"] = rate
        rec["room_total"] = money(rate * nights)
        rec["total_price"] = money(rec["room_total"] + rec["extras_total"])
        if diff > 0:
            rec["transactions"].append(
                {
                    "type": "charge",
                    "amount": diff,
                    "payment_method_id": payment_method_id,
                    "note": "room change",
                }
            )
            money_text = f"{fmt_money(diff)} charged to {payment_method_id}"
        elif diff < 0:
            pm = rec["payment_method_id"]
            rec["transactions"].append(
                {"type": "refund", "amount": -diff, "payment_method_id": pm, "note": "room change"}
            )
            self._refund(b["guest_id"], pm, -diff)
            money_text = f"{fmt_money(-diff)} refunded to {pm}"
        else:
            money_text = "no price difference"
        return (
            f"Booking {booking_id} changed to a {room_type} room at {fmt_money(rate)} per night, "
            f"new total {fmt_money(rec['total_price'])}; {money_text}."
        )

    def add_booking_extra(self, booking_id: str, extra: str, payment_method_id: str) -> str:
        b = self._confirmed(booking_id)
        if extra not in EXTRAS:
            raise ToolError(f"extra must be one of {', '.join(EXTRAS)}")
        if extra in b["extras"]:
            raise ToolError(f"booking {booking_id} already includes {extra}")
        guest = self._guest(b["guest_id"])
        self._check_pm_exists(guest, payment_method_id)
        price = extra_price(extra, guest["loyalty_tier"], b["nights"], b["adults"])
        self._charge(guest, payment_method_id, price)
        rec = self._edit_booking(booking_id)
        rec["extras"] = sorted([*rec["extras"], extra])
        rec["extras_total"] = money(rec["extras_total"] + price)
        rec["total_price"] = money(rec["room_total"] + rec["extras_total"])
        if price > 0:
            rec["transactions"].append(
                {
                    "type": "charge",
                    "amount": price,
                    "payment_method_id": payment_method_id,
                    "note": f"extra {extra}",
                }
            )
        return (
            f"Added {extra} to booking {booking_id}: {fmt_money(price)} charged to "
            f"{payment_method_id}; new total {fmt_money(rec['total_price'])}."
        )

    def remove_booking_extra(self, booking_id: str, extra: str) -> str:
        b = self._confirmed(booking_id)
        if extra not in EXTRAS:
            raise ToolError(f"extra must be one of {', '.join(EXTRAS)}")
        if extra not in b["extras"]:
            raise ToolError(f"booking {booking_id} does not include {extra}")
        guest = self._guest(b["guest_id"])
        price = extra_price(extra, guest["loyalty_tier"], b["nights"], b["adults"])
        rec = self._edit_booking(booking_id)
        rec["extras"] = [e for e in rec["extras"] if e != extra]
        rec["extras_total"] = money(rec["extras_total"] - price)
        rec["total_price"] = money(rec["room_total"] + rec["extras_total"])
        pm = rec["payment_method_id"]
        if price > 0:
            rec["transactions"].append(
                {
                    "type": "refund",
                    "amount": price,
                    "payment_method_id": pm,
                    "note": f"extra {extra}",
                }
            )
            self._refund(b["guest_id"], pm, price)
        return (
            f"Removed {extra} from booking {booking_id}: {fmt_money(price)} refunded to {pm}; "
            f"new total {fmt_money(rec['total_price'])}."
        )

    def update_guest_contact(
        self, guest_id: str, email: str | None = None, phone: str | None = None
    ) -> str:
        guest = self._guest(guest_id)
        if email is None and phone is None:
            raise ToolError("give a new email, a new phone, or both")
        changes: dict[str, str] = {}
        if email is not None:
            new_email = email.lower()
            if not _EMAIL.match(new_email):
                raise ToolError(f"{email!r} is not a valid e-mail address")
            if new_email != guest["email"].lower():
                owner = self._owner_of_email(new_email)
                if owner is not None and owner != guest_id:
                    raise ToolError("that e-mail address belongs to another guest profile")
            changes["email"] = new_email
        if phone is not None:
            digits = _digits(phone)
            if len(digits) == 11 and digits.startswith("1"):
                digits = digits[1:]
            if len(digits) != 10:
                raise ToolError(f"{phone!r} is not a ten-digit phone number")
            changes["phone"] = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
        rec = self._edit_guest(guest_id)
        rec.update(changes)
        shown = ", ".join(f"{k} {v}" for k, v in changes.items())
        return f"Guest {guest_id} updated: {shown}."

    def _owner_of_email(self, email: str) -> str | None:
        try:
            return self.find_guest_by_email(email)
        except ToolError:
            return None


_HANDLERS: dict[str, Callable[..., str]] = {name: getattr(HotelEnvironment, name) for name in SPECS}


__all__ = [
    "NEW_BOOKING_BASE",
    "SPECS",
    "TOOL_SCHEMAS",
    "WRITE_TOOLS",
    "HotelEnvironment",
    "HotelIndex",
    "ToolError",
    "safe_calculate",
]
