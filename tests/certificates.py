"""Throwaway certificates for tests that serve or call HTTPS on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def certificate(subject: str, key, issuer_key, issuer: x509.Name | None) -> x509.Certificate:
    """A CA certificate (no issuer) or a server certificate for 127.0.0.1 it issued."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def throwaway_ca(folder: Path) -> dict[str, Path]:
    """PEM files in ``folder``: a CA (``ca``), a server certificate for 127.0.0.1 it issued
    (``cert``, ``key``), and a CA that issued nothing here (``other_ca``)."""
    ca_key, other_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = certificate("Test Cluster CA", ca_key, ca_key, None)
    pems = {
        "ca": ca.public_bytes(serialization.Encoding.PEM),
        "other_ca": certificate("Another CA", other_key, other_key, None).public_bytes(
            serialization.Encoding.PEM
        ),
        "cert": certificate("127.0.0.1", key, ca_key, ca.subject).public_bytes(
            serialization.Encoding.PEM
        ),
        "key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }
    paths = {}
    for name, pem in pems.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(pem)
    return paths
