#!/usr/bin/env python3
"""Computes the instants each test calendar means, with an implementation independent of
Qhronos's `recur`: Python `icalendar` (time zones from the files' own VTIMEZONE blocks, Windows
names) and `recurring-ical-events` (RRULE, RDATE, EXDATE, RECURRENCE-ID overrides).

Run once, output checked in beside the files:

    pip install recurring-ical-events==3.8.2 icalendar==7.3.2
    python3 expected.py > expected.json

For each file and each UID: the starts of its occurrences in [2026-01-01, 2027-01-01) UTC, in
UTC (RFC 3339, `Z`), or local dates (`YYYY-MM-DD`) for all-day events; occurrences whose
STATUS is CANCELLED are left out (a cancelled series has none).
"""

import datetime as dt
import json
import sys
from pathlib import Path

import icalendar
import recurring_ical_events

FILES = ["google.ics", "outlook.ics", "apple.ics", "thunderbird.ics"]
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
END = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)


def main():
    here = Path(__file__).parent
    out = {}
    for name in FILES:
        cal = icalendar.Calendar.from_ical((here / name).read_bytes())
        per_uid = {}
        for uid in sorted({str(e["UID"]) for e in cal.walk("VEVENT")}):
            per_uid[uid] = {"all_day": False, "starts": []}
        for occ in recurring_ical_events.of(cal).between(START, END):
            uid = str(occ["UID"])
            if str(occ.get("STATUS", "")).upper() == "CANCELLED":
                continue
            start = occ["DTSTART"].dt
            if isinstance(start, dt.datetime):
                if start.tzinfo is None:
                    sys.exit(f"{name} {uid}: floating time, not in the test data")
                s = start.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            else:
                per_uid[uid]["all_day"] = True
                s = start.isoformat()
            per_uid[uid]["starts"].append(s)
        for v in per_uid.values():
            v["starts"].sort()
        out[name] = per_uid
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
