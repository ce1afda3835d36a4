"""SFPD incident categories (DataSF's 2008 vocabulary) by the urgency a dispatcher would give them.

Shared by the demo's calls for service (`sim.demo.room`) and the historic import (`outpost incidents
import`), so a live call and an imported report of one category get the same priority.
"""

from __future__ import annotations

# Violence against people first, then property in progress, then reports.
_P1 = frozenset({"ASSAULT", "ROBBERY", "KIDNAPPING", "WEAPON LAWS", "SEX OFFENSES, FORCIBLE", "ARSON"})
_P2 = frozenset(
    {
        "BURGLARY",
        "VEHICLE THEFT",
        "VANDALISM",
        "DRUG/NARCOTIC",
        "DRUNKENNESS",
        "DISORDERLY CONDUCT",
        "TRESPASS",
        "STOLEN PROPERTY",
    }
)
_P3 = frozenset({"LARCENY/THEFT", "SUSPICIOUS OCC", "MISSING PERSON", "FRAUD", "PROSTITUTION"})


def priority_of(category: str) -> str:
    """The priority a dispatcher would give an SFPD category (P1 most urgent; unknown: P4)."""
    upper = category.upper()
    if upper in _P1:
        return "P1"
    if upper in _P2:
        return "P2"
    return "P3" if upper in _P3 else "P4"
