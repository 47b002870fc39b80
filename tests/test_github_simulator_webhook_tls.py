"""Webhooks to https:// receivers: verified against the system CAs plus ``webhook_ca_file``."""

from __future__ import annotations

import ssl

import pytest

from simulators.github import SimulatorConfig
from simulators.github.testing import WebhookReceiver, running_simulator, sample_seed
from tests.certificates import throwaway_ca

REPO = "acme/widgets"


@pytest.fixture(scope="module")
def cluster_ca(tmp_path_factory):
    """A private CA and a server certificate for 127.0.0.1 it issued: (ca.crt, cert, key)."""
    paths = throwaway_ca(tmp_path_factory.mktemp("ca"))
    return paths["ca"], paths["cert"], paths["key"]


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
