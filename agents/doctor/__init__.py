"""``storeedge doctor``: tells a field technician what is wrong with a gateway (see :mod:`agents.doctor.runner`)."""

from agents.doctor.runner import CheckResult, Doctor, exit_code, redact_text, report, write_bundle

__all__ = ["CheckResult", "Doctor", "exit_code", "redact_text", "report", "write_bundle"]
