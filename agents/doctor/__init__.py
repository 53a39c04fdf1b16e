"""``storeedge doctor``: one command that tells a field technician what is wrong with a gateway and how to fix it.

Every check returns ``pass``, ``warn`` or ``fail`` with a one-line summary and, unless it passed, a one-line
``hint`` that says what to do. The checks read what the running gateway leaves behind (``health.json``, the
outbox and tag-store SQLite files, opened read-only) and probe the outside world the way the gateway would
(broker TCP and TLS, cameras, the detector model, serial ports, the Bluetooth adapter). A check that cannot
tell on this machine (no thermal sensor, no NTP status) passes with a note instead of warning forever.

Nothing here changes the gateway's state. Serial buses are only opened when no gateway is running (a fresh
``health.json`` means the gateway owns the port: the doctor then reports the bus state the gateway sees, so
it never talks over a live RS-485 bus). ``--bundle`` writes a support archive: the check results, versions,
the configuration and the health snapshot, with every secret redacted (:func:`redact_text`).

Modules: :mod:`~agents.doctor.results` (what a check answers), :mod:`~agents.doctor.system` (clock, memory,
CPU temperature, disk), :mod:`~agents.doctor.gateway` (what the gateway leaves behind, its agents),
:mod:`~agents.doctor.network` (broker, TLS, certificates, outbox backlog), :mod:`~agents.doctor.devices`
(cameras, detectors, Bluetooth, serial buses, tag fleet), :mod:`~agents.doctor.runner` (:class:`Doctor`, which
runs them all) and :mod:`~agents.doctor.bundle` (the support bundle).
"""

from agents.doctor.bundle import redact_text, write_bundle
from agents.doctor.results import CheckResult, exit_code, report
from agents.doctor.runner import Doctor

__all__ = ["CheckResult", "Doctor", "exit_code", "redact_text", "report", "write_bundle"]
