"""Gateway identities: an EC P-256 key, a CSR, and (when the installer brings a CA) a client certificate.

Each gateway gets its own key, made on the installer's machine and written only into that gateway's target tree
(mode 0600); it is never printed. The certificate names the gateway in its subject (``CN=<gateway_id>``,
``OU=<store_id>``) and is restricted to TLS client authentication, which is what mosquitto's
``require_certificate`` checks. Keys and certificates are reused when they still fit (same key, same subject, same
issuer, not close to expiry), which is what makes re-running the provisioning idempotent: ECDSA signatures are
randomised, so re-signing would change the files every time.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agents.provision.errors import ProvisionInputError

__all__ = [
    "CA_KEY_PASSWORD_ENV",
    "CertificateAuthority",
    "gateway_subject",
    "issue_certificate",
    "key_fingerprint",
    "load_private_key",
    "make_csr",
    "new_private_key",
    "private_key_pem",
    "reusable_certificate",
    "reusable_csr",
]

CA_KEY_PASSWORD_ENV = "STOREEDGE_CA_KEY_PASSWORD"
"""Environment variable holding the CA key's passphrase (kept off the command line and out of shell history)."""
RENEW_BEFORE = dt.timedelta(days=30)

IssuerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True)
class CertificateAuthority:
    """The installer's CA: certificate and private key, loaded and checked to belong together."""

    certificate: x509.Certificate
    key: IssuerKey

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> CertificateAuthority:
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except OSError as exc:
            raise ProvisionInputError(f"--ca-cert: cannot read {cert_path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ProvisionInputError(f"--ca-cert: {cert_path} is not a PEM certificate") from exc
        password = os.environ.get(CA_KEY_PASSWORD_ENV)
        try:
            key = serialization.load_pem_private_key(
                key_path.read_bytes(), password=password.encode() if password else None
            )
        except OSError as exc:
            raise ProvisionInputError(f"--ca-key: cannot read {key_path}: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:
            raise ProvisionInputError(
                f"--ca-key: cannot load the private key in {key_path} (encrypted keys need ${CA_KEY_PASSWORD_ENV})"
            ) from exc
        if not isinstance(key, IssuerKey):
            raise ProvisionInputError(f"--ca-key: {type(key).__name__} keys cannot sign certificates")
        if key.public_key() != certificate.public_key():
            raise ProvisionInputError("--ca-key does not belong to --ca-cert (their public keys differ)")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound as exc:
            raise ProvisionInputError(f"--ca-cert: {cert_path} has no basicConstraints; not a CA") from exc
        if not constraints.ca:
            raise ProvisionInputError(f"--ca-cert: {cert_path} is not a CA certificate (basicConstraints CA:FALSE)")
        return cls(certificate, key)


def new_private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(data: bytes, path: Path) -> ec.EllipticCurvePrivateKey:
    """The gateway key already in the target; an input error if it is not an unencrypted EC P-256 PEM key."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvisionInputError(
            f"{path} exists but is not a readable PEM private key (use --force to replace)"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ProvisionInputError(f"{path} is not an EC P-256 key (use --force to replace it)")
    return key


def key_fingerprint(key: ec.EllipticCurvePrivateKey) -> str:
    """Short sha256 of the public key (SubjectPublicKeyInfo DER): printable, identifies the key, reveals nothing."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return digest.finalize().hex()[:16]


def gateway_subject(store_id: str, gateway_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, store_id),
            x509.NameAttribute(NameOID.COMMON_NAME, gateway_id),
        ]
    )


def make_csr(key: ec.EllipticCurvePrivateKey, subject: x509.Name) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def reusable_csr(data: bytes, key: ec.EllipticCurvePrivateKey, subject: x509.Name) -> bool:
    """Whether an existing CSR still matches the key and subject (then it is kept as it is)."""
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError:
        return False
    return csr.is_signature_valid and csr.subject == subject and csr.public_key() == key.public_key()


def issue_certificate(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey, subject: x509.Name, days: int
) -> x509.Certificate:
    """A TLS client certificate for ``key``, signed by ``ca``, valid for ``days`` (from 5 minutes ago)."""
    now = dt.datetime.now(dt.UTC)
    ca_public = ca.certificate.public_key()
    try:
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public)  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(authority_key_id, critical=False)
    )
    algorithm = None if isinstance(ca.key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    return builder.sign(ca.key, algorithm)


def reusable_certificate(
    data: bytes, key: ec.EllipticCurvePrivateKey, subject: x509.Name, ca: CertificateAuthority | None
) -> bool:
    """Whether an existing certificate still fits: same key and subject, issued by ``ca``, not near expiry."""
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        return False
    if certificate.public_key() != key.public_key() or certificate.subject != subject:
        return False
    if certificate.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    if ca is None:
        return True
    try:
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
