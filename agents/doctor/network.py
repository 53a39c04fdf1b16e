"""The cloud link: the broker over TCP and TLS, the gateway's certificates, and the outbox backlog.

The broker is probed the way the gateway connects to it (host and port of ``broker.url``, the CA and client
certificate of ``broker.tls``); the certificates are looked at whether or not the broker is up, since they expire
either way.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from datetime import UTC, datetime
from pathlib import Path

from agents.doctor.gateway import query_one
from agents.doctor.results import CheckResult, fail, ok, warn
from agents.gateway.config import GatewayConfig

__all__ = [
    "CERT_WARN_DAYS",
    "OUTBOX_WARN_AGE_S",
    "OUTBOX_WARN_MESSAGES",
    "check_broker",
    "check_certificates",
    "check_outbox",
    "check_tls",
]

CERT_WARN_DAYS = 30
OUTBOX_WARN_MESSAGES = 10_000
OUTBOX_WARN_AGE_S = 3600.0


async def check_broker(config: GatewayConfig, timeout_s: float) -> list[CheckResult]:
    """TCP to the broker, the TLS handshake on an ``mqtts://`` URL, and the certificates' expiry."""
    url = config.broker.parsed_url
    where = f"{url.host}:{url.port}"
    results = []
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.close()
        await writer.wait_closed()
        results.append(ok("broker", f"broker {where} reachable"))
        if url.tls:
            results.append(await asyncio.to_thread(check_tls, config, url.host, url.port, timeout_s))
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        results.append(
            fail(
                "broker",
                f"broker {where} unreachable: {reason}",
                "check that the broker runs and that this store's network and firewall allow "
                f"TCP {url.port}; broker.url in the config",
            )
        )
    # certificates expire whether or not the broker is up: always look at them
    return results + check_certificates(config)


def check_tls(config: GatewayConfig, host: str, port: int, timeout_s: float) -> CheckResult:
    """A TLS handshake with the broker, with the CA and client certificate of the configuration."""
    tls = config.broker.tls
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls and tls.ca_file else None)
    if tls and tls.insecure_skip_verify:
        context.check_hostname = False
    if tls and tls.cert_file and tls.key_file:
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            return fail(
                "broker_tls",
                f"cannot load the client certificate: {exc}",
                "check broker.tls.cert_file and key_file (paths, permissions, matching key)",
            )
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as wrapped,
        ):
            version = wrapped.version()
    except ssl.SSLCertVerificationError as exc:
        return fail(
            "broker_tls",
            f"broker certificate not trusted: {exc.verify_message}",
            "broker.tls.ca_file must hold the CA that signed the broker's certificate",
        )
    except (OSError, ssl.SSLError) as exc:
        return fail(
            "broker_tls",
            f"TLS handshake with {host}:{port} failed: {exc}",
            "check the broker's TLS listener and this gateway's certificate (is it signed by the broker's CA?)",
        )
    return ok("broker_tls", f"TLS handshake ok ({version})")


def check_certificates(config: GatewayConfig) -> list[CheckResult]:
    """The client and CA certificates: readable, and not expired or expiring within ``CERT_WARN_DAYS``."""
    tls = config.broker.tls
    results = []
    for label, path in (
        ("client certificate", tls.cert_file if tls else None),
        ("CA certificate", tls.ca_file if tls else None),
    ):
        if path is None:
            continue
        name = "certificate" if label == "client certificate" else "ca_certificate"
        try:
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            results.append(
                fail(
                    name,
                    f"cannot read the {label} {path}: {exc}",
                    "re-provision the gateway's TLS files with `tools/flash.py gateway`",
                )
            )
            continue
        expires = cert.not_valid_after_utc
        days = (expires - datetime.now(UTC)).total_seconds() / 86400
        detail = {"path": str(path), "expires": expires.isoformat(), "days_left": round(days, 1)}
        if days < 0:
            results.append(
                fail(
                    name,
                    f"{label} expired on {expires:%Y-%m-%d}",
                    "issue a new certificate: `tools/flash.py gateway --ca-cert CA --ca-key KEY ...`, then restart",
                    **detail,
                )
            )
        elif days < CERT_WARN_DAYS:
            results.append(
                warn(
                    name,
                    f"{label} expires in {days:.0f} days ({expires:%Y-%m-%d})",
                    "renew it before it expires: `tools/flash.py gateway ...`",
                    **detail,
                )
            )
        else:
            results.append(ok(name, f"{label} valid until {expires:%Y-%m-%d}", **detail))
    return results


async def check_outbox(config: GatewayConfig) -> list[CheckResult]:
    """The backlog of the durable outbox: a long one means the cloud link is down or slow."""
    path = config.outbox_path
    if not path.exists():
        return [ok("outbox", "no outbox yet (the gateway has not run here)")]
    row = await asyncio.to_thread(query_one, path, "SELECT COUNT(*), MIN(ts) FROM outbox")
    count, oldest = row or (0, None)
    age = time.time() - oldest if oldest else 0.0
    detail = {"backlog_messages": count, "oldest_age_s": round(age, 1)}
    if count >= OUTBOX_WARN_MESSAGES or age >= OUTBOX_WARN_AGE_S:
        return [
            warn(
                "outbox",
                f"{count} messages waiting, oldest {age / 60:.0f} min",
                "the cloud link is down or slow: see the broker checks; data is kept up to outbox.max_age",
                **detail,
            )
        ]
    return [ok("outbox", f"{count} messages waiting", **detail)]
