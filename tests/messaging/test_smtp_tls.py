"""Email over SMTP with TLS: STARTTLS and implicit TLS (``smtps://``) against an aiosmtpd server
on loopback whose certificate is made here (a CA and a server certificate for 127.0.0.1); the
certificate is verified against ``FIDELE_SMTP_CA_FILE`` and an untrusted one is refused, the
reason recorded on the send."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fidele.kit.clock import FrozenClock
from fidele.messaging import delivery
from fidele.messaging.models import MessageSend
from fidele.settings import Settings
from tests.conftest import SECRET, T0
from tests.messaging.conftest import Sink
from tests.messaging.test_smtp import _queue


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_cert(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, folder: Path
) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by ``ca``; (certificate chain, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain, key_file = folder / "server.pem", folder / "server.key"
    chain.write_bytes(_pem(cert))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, key_file


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The server's certificate and key, the CA that signed it and another, unrelated CA."""
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_key = _ca("fidele test CA")
    other, _ = _ca("someone else's CA")
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "other-ca.pem").write_bytes(_pem(other))
    chain, key = _server_cert(ca, ca_key, folder)
    return {"ca": folder / "ca.pem", "other": folder / "other-ca.pem", "cert": chain, "key": key}


def _server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["cert"], pki["key"])
    return context


def _serve(handler: Sink, **kwargs: object) -> Controller:
    controller = Controller(handler, hostname=handler.host, port=handler.port, **kwargs)
    controller.start()
    return controller


@pytest.fixture
def starttls_sink(pki: dict[str, Path]) -> Iterator[Sink]:
    """A server that refuses mail until the client has upgraded with STARTTLS."""
    from tests.fixtures.console import free_port

    handler = Sink("127.0.0.1", free_port())
    controller = _serve(handler, tls_context=_server_context(pki), require_starttls=True)
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def tls_sink(pki: dict[str, Path]) -> Iterator[Sink]:
    """A server speaking TLS from the first byte (``smtps://``)."""
    from tests.fixtures.console import free_port

    handler = Sink("127.0.0.1", free_port())
    controller = _serve(handler, ssl_context=_server_context(pki))
    try:
        yield handler
    finally:
        controller.stop()


def _settings(monkeypatch: pytest.MonkeyPatch, url: str, ca_file: Path | None = None) -> Settings:
    """The settings a worker reads from its environment."""
    monkeypatch.setenv("FIDELE_SMTP_URL", url)
    if ca_file is not None:
        monkeypatch.setenv("FIDELE_SMTP_CA_FILE", str(ca_file))
    monkeypatch.setenv("FIDELE_SMTP_TIMEOUT_SECONDS", "5")
    return Settings(env="test", secret_key=SECRET)


def _sent_ids(sink: Sink) -> list[str]:
    return sorted(message_from_bytes(m, policy=default)["Message-ID"] for m in sink.messages)


def _rows(session, ids):  # type: ignore[no-untyped-def]
    rows = [session.get(MessageSend, i) for i in ids]
    for row in rows:
        session.refresh(row)
    return rows


def test_starttls_with_the_certificate_verified(
    session, factory, tenant, starttls_sink, pki, monkeypatch
):
    ids = _queue(session, tenant, 2)
    url = f"smtp://127.0.0.1:{starttls_sink.port}?starttls=true"
    settings = _settings(monkeypatch, url, pki["ca"])
    assert settings.smtp_ca_file == str(pki["ca"])
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=settings) == 2
    rows = _rows(session, ids)
    assert [r.status for r in rows] == ["sent", "sent"]
    assert _sent_ids(starttls_sink) == sorted(r.message_id for r in rows)


def test_plain_smtp_is_refused_by_a_server_requiring_starttls(
    session, factory, tenant, starttls_sink, monkeypatch
):
    """The control: without ``?starttls=true`` this server takes nothing, so the test above
    really went through TLS."""
    ids = _queue(session, tenant, 1)
    settings = _settings(monkeypatch, f"smtp://127.0.0.1:{starttls_sink.port}")
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=settings) == 0
    (row,) = _rows(session, ids)
    assert (row.status, row.reason) == ("failed", "refused")  # a 5xx answer
    assert "530" in row.last_error and "STARTTLS" in row.last_error
    assert starttls_sink.messages == []


def test_implicit_tls_with_the_certificate_verified(
    session, factory, tenant, tls_sink, pki, monkeypatch
):
    ids = _queue(session, tenant, 2)
    settings = _settings(monkeypatch, f"smtps://127.0.0.1:{tls_sink.port}", pki["ca"])
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=settings) == 2
    rows = _rows(session, ids)
    assert [r.status for r in rows] == ["sent", "sent"]
    assert _sent_ids(tls_sink) == sorted(r.message_id for r in rows)


@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_an_untrusted_certificate_is_refused_and_recorded(
    session, factory, tenant, starttls_sink, tls_sink, pki, monkeypatch, mode
):
    """Signed by a CA the sender does not trust: nothing is sent, the row stays queued for a
    retry (the operator may fix the CA file) with the reason on it, and the worker goes on."""
    ids = _queue(session, tenant, 1)
    url = (
        f"smtp://127.0.0.1:{starttls_sink.port}?starttls=true"
        if mode == "starttls"
        else f"smtps://127.0.0.1:{tls_sink.port}"
    )
    settings = _settings(monkeypatch, url, pki["other"])
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=settings) == 0
    (row,) = _rows(session, ids)
    assert (row.status, row.attempts) == ("queued", 1)
    assert "certificate not trusted" in row.last_error
    assert "FIDELE_SMTP_CA_FILE" in row.last_error
    assert starttls_sink.messages == [] and tls_sink.messages == []


def test_an_unreadable_ca_file_is_recorded_on_the_send(
    session, factory, tenant, tls_sink, tmp_path, monkeypatch
):
    ids = _queue(session, tenant, 1)
    missing = tmp_path / "missing.pem"
    settings = _settings(monkeypatch, f"smtps://127.0.0.1:{tls_sink.port}", missing)
    assert delivery.deliver_due(factory, FrozenClock(T0), settings=settings) == 0
    (row,) = _rows(session, ids)
    assert row.status == "queued" and "FIDELE_SMTP_CA_FILE" in row.last_error
    assert str(missing) in row.last_error
