"""Time, parsed once for every entry point: what a bare date means, and that nothing passes now.

A query has two clocks (see :class:`~strongroom.types.Scope`): ``as_of`` bounds when a
version became knowable (its publication), ``known_at`` bounds when the platform learned
it (its ingestion). Both default to now and neither can pass now: a later value is now.

A bare date (``2023-06-30``) means the **end of that day, UTC** (23:59:59.999999), on the
CLI, over HTTP and in Python alike, so "as of June 30" includes what was published that day.
A datetime without a zone is UTC. ``published_from`` (a lower bound on publication, a filter
rather than a clock) takes the same forms, except that a bare date is the **start** of that
day, so "from June 1 as of June 30" includes both days; it may not be after ``as_of``.

>>> parse_instant("2023-06-30", "as_of").isoformat()
'2023-06-30T23:59:59.999999+00:00'
>>> parse_instant("2023-06-30T09:30:00+02:00", "as_of").isoformat()
'2023-06-30T07:30:00+00:00'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from strongroom.errors import QueryError
from strongroom.types import utcnow

__all__ = ["Clocks", "TimeInput", "parse_instant"]

#: what an entry point may hand over: a string as the user typed it, a datetime, or nothing
TimeInput = str | datetime | date | None


def parse_instant(value: TimeInput, name: str, *, bare_date: str = "end") -> datetime | None:
    """``value`` as an aware UTC datetime (None stays None).

    ``bare_date``: ``end`` (the default, for query clocks) maps a date to the end of that
    day; ``start`` maps it to midnight (for a publication date given at ingestion).
    Raises :class:`QueryError` naming ``name`` for anything else.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return _day(value, bare_date)
    else:
        text = value.strip()
        try:
            if "T" not in text and " " not in text and ":" not in text:  # a date: 2023-06-30 or 20230630
                return _day(date.fromisoformat(text), bare_date)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError as exc:
            raise QueryError(f"{name}: {value!r} is not a date (YYYY-MM-DD) or an ISO datetime") from exc
    try:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 is in year 0 in UTC; Python has no year 0
        raise QueryError(f"{name}: {value!s} is outside years 1 to 9999 in UTC; give a time inside them") from exc


def _day(day: date, bare_date: str) -> datetime:
    midnight = datetime.combine(day, time.min, UTC)
    return midnight + timedelta(days=1, microseconds=-1) if bare_date == "end" else midnight


@dataclass(frozen=True)
class Clocks:
    """The two clocks of one query, as asked and as applied (clamped to now), and the lower
    bound on publication that goes with them.

    ``as_of``/``known_at`` are what the caller asked for (None: now); ``applied()`` gives
    the instants every store filters with. The audit record keeps both, so a replay knows
    what was asked and what was used. ``published_from``: only versions published then or
    later (None: no lower bound).
    """

    as_of: datetime | None = None
    known_at: datetime | None = None
    now: datetime | None = None
    published_from: datetime | None = None

    @classmethod
    def parse(cls, as_of: TimeInput = None, known_at: TimeInput = None, published_from: TimeInput = None) -> Clocks:
        """The clocks as typed; a :class:`QueryError` for a value that is not a time, or for a
        ``published_from`` after ``as_of`` (or after now), which could find nothing."""
        clocks = cls(
            parse_instant(as_of, "as_of"),
            parse_instant(known_at, "known_at"),
            utcnow(),
            parse_instant(published_from, "published_from", bare_date="start"),
        )
        upper = clocks.applied()[0]
        if clocks.published_from is not None and clocks.published_from > upper:
            which = "as_of" if clocks.as_of is not None and clocks.as_of <= upper else "now"
            raise QueryError(
                f"published_from ({clocks.published_from.isoformat()}) is after {which} ({upper.isoformat()}): "
                "nothing could match; give an earlier published_from or a later as_of"
            )
        return clocks

    def applied(self) -> tuple[datetime, datetime]:
        """(as_of, known_at) as the stores apply them: each one, or now if later or absent."""
        now = self.now or utcnow()
        return (min(self.as_of or now, now), min(self.known_at or now, now))

    def describe(self) -> dict[str, object]:
        """For the audit record: what was asked and what was applied."""
        as_of, known_at = self.applied()
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "known_at": self.known_at.isoformat() if self.known_at else None,
            "applied_as_of": as_of.isoformat(),
            "applied_known_at": known_at.isoformat(),
            "published_from": self.published_from.isoformat() if self.published_from else None,
        }
