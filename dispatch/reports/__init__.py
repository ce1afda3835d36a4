"""The monthly workload and performance report: each officer's month from the incident loop, the status
history, the duty roster, check-ins, roll calls and the fixes, ranked, with station and grid totals.

`months` (a month in station time), `spans` and `maths` (pure arithmetic), `assemble` (the report from
`store.reports`' rows), `service` (generate, store, the automatic run), `formats` and `html` (CSV, JSON,
the printable page), `routes` and `plugin` (the API).
"""
