"""Webhooks to https:// receivers: verified against the system CAs plus ``webhook_ca_file``."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulators.github import SimulatorConfig
from simulators.github.testing import WebhookReceiver, running_simulator, sample_seed

REPO = "acme/widgets"


def _certificate(subject: str, key, issuer_key, issuer: x509.Name | None, ca: bool):
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
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def cluster_ca(tmp_path_factory):
    """A private CA and a server certificate for 127.0.0.1 it issued: (ca.crt, cert, key)."""
    folder = tmp_path_factory.mktemp("ca")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test Cluster CA", ca_key, ca_key, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("127.0.0.1", key, ca_key, ca.subject, ca=False)
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.mark.parametrize("trust_ca", [True, False])
def test_https_delivery_trusts_the_configured_ca(tmp_path, cluster_ca, trust_ca):
    ca_file, cert, key = cluster_ca
    config = SimulatorConfig(
        seed=sample_seed(), data_dir=tmp_path, webhook_ca_file=ca_file if trust_ca else None
    )
    with WebhookReceiver() as receiver, running_simulator(config) as (sim, _):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = receiver._server
        server.socket = context.wrap_socket(server.socket, server_side=True)
        url = receiver.url.replace("http://", "https://")
        hook = sim.create_hook(REPO, url, events=["issues"], sender="alice")
        sim.create_issue(REPO, "bob", "Over TLS")
        assert sim.wait_idle()
        deliveries = sim.deliveries(hook_id=hook.id)
        issues = [d for d in deliveries if d.event == "issues"]
        assert issues
        if trust_ca:
            assert all(d.success for d in issues), [d.status for d in issues]
            assert receiver.events("issues")
        else:
            assert not any(d.success for d in issues)
            assert "CERTIFICATE_VERIFY_FAILED" in issues[0].status
