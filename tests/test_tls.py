"""Real-crypto checks of mock_server.server.tls and mock_server.shell_env (no mocks)."""
from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import certifi
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mock_server.shell_env import export_lines
from mock_server.server.tls import SERVER_SANS, HostCertificates, TLSFiles, ensure_tls, ssl_context, uvicorn_ssl_kwargs
from mock_server.settings import default_state_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
POSIX = os.name != "nt"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return ensure_tls(tmp_path_factory.mktemp("state"))


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ca_key(files: TLSFiles) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((files.directory / "ca-key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _write_server_cert(files: TLSFiles, *, not_after: dt.datetime, sans: list[x509.GeneralName]) -> bytes:
    """Replace server.pem/server-key.pem with a cert signed by the real CA, as chosen by the test."""
    pem, key_pem = _leaf(files, sans, [ExtendedKeyUsageOID.SERVER_AUTH], not_after=not_after)
    files.server_key.write_bytes(key_pem)
    files.server_cert.write_bytes(pem)
    return pem


# --------------------------------------------------------------------------- a real TLS server


class _TLSServer:
    """Accepts TLS connections on a loopback socket in a thread and answers b"ok"."""

    def __init__(self, ctx: ssl.SSLContext, family: int = socket.AF_INET, addr: str = "127.0.0.1"):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((addr, 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self._stop:
                conn.close()
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass  # a client that refused our certificate

    def close(self) -> None:
        self._stop = True
        try:  # wake the blocking accept()
            socket.create_connection(self.sock.getsockname()[:2], timeout=2).close()
        except OSError:
            pass
        self.thread.join(timeout=5)
        self.sock.close()


def _client_read(port: int, server_hostname: str, cafile: str, addr: str = "127.0.0.1") -> bytes:
    client = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((addr, port), timeout=10) as raw:
        with client.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.recv(16)


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost", "queue.localhost"])
def test_certificate_chains_to_ca_through_bundle(tls_files: TLSFiles, hostname: str) -> None:
    server = _TLSServer(ssl_context(tls_files))
    try:
        assert _client_read(server.port, hostname, str(tls_files.bundle)) == b"ok"
        # The CA file alone (what NODE_EXTRA_CA_CERTS adds) is enough as well.
        assert _client_read(server.port, hostname, str(tls_files.ca_cert)) == b"ok"
    finally:
        server.close()


def test_ipv6_loopback(tls_files: TLSFiles) -> None:
    try:
        server = _TLSServer(ssl_context(tls_files), socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert _client_read(server.port, "::1", str(tls_files.bundle), addr="::1") == b"ok"
    finally:
        server.close()


def test_plain_certifi_and_wrong_names_are_rejected(tls_files: TLSFiles) -> None:
    """The checks above are meaningful: without the mock CA, or for another name, verification fails."""
    server = _TLSServer(ssl_context(tls_files))
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            _client_read(server.port, "localhost", certifi.where())
        with pytest.raises(ssl.SSLCertVerificationError):
            _client_read(server.port, "fal.run", str(tls_files.bundle))
    finally:
        server.close()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def https_server(tls_files: TLSFiles):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    httpd.socket = ssl_context(tls_files).wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_httpx_verifies_with_bundle(tls_files: TLSFiles, https_server: int) -> None:
    verify = ssl.create_default_context(cafile=str(tls_files.bundle))
    for host in ("127.0.0.1", "localhost"):
        with httpx.Client(verify=verify) as client:
            r = client.get(f"https://{host}:{https_server}/_mock/health")
        assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_httpx_honours_ssl_cert_file(
    tls_files: TLSFiles, https_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route fal-client takes: default httpx client + SSL_CERT_FILE=bundle."""
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.bundle))
    with httpx.Client() as client:
        assert client.get(f"https://127.0.0.1:{https_server}/").status_code == 200
    monkeypatch.delenv("SSL_CERT_FILE")
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(f"https://127.0.0.1:{https_server}/")


def test_uvicorn_kwargs(tls_files: TLSFiles) -> None:
    assert uvicorn_ssl_kwargs(tls_files) == {
        "ssl_certfile": str(tls_files.server_cert),
        "ssl_keyfile": str(tls_files.server_key),
    }


# --------------------------------------------------------------------------- certificate contents


def test_ca_and_server_certificate_fields(tls_files: TLSFiles) -> None:
    ca = _cert(tls_files.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "fal-mock local CA"
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert dt.timedelta(days=3640) < ca.not_valid_after_utc - ca.not_valid_before_utc <= dt.timedelta(days=3660)

    srv = _cert(tls_files.server_cert)
    srv.verify_directly_issued_by(ca)
    sans = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert set(sans.get_values_for_type(x509.DNSName)) == {"localhost", "*.localhost", "queue.localhost"}
    assert ExtendedKeyUsageOID.SERVER_AUTH in srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert not srv.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert srv.not_valid_after_utc - srv.not_valid_before_utc <= dt.timedelta(days=825)


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_key_files_are_private(tls_files: TLSFiles) -> None:
    for key in (tls_files.server_key, tls_files.directory / "ca-key.pem"):
        assert key.stat().st_mode & 0o777 == 0o600
    assert tls_files.directory.stat().st_mode & 0o777 == 0o700


def test_layout(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    tls_dir = tmp_path / "tls"
    assert files == TLSFiles(
        ca_cert=tls_dir / "ca.pem",
        server_cert=tls_dir / "server.pem",
        server_key=tls_dir / "server-key.pem",
        bundle=tls_dir / "bundle.pem",
    )
    names = {p.name for p in tls_dir.iterdir() if not p.name.startswith(".")}
    assert names == {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "bundle.pem"}
    assert not [p for p in tls_dir.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- reuse and renewal


def test_reuse_keeps_everything(tmp_path: Path) -> None:
    first = ensure_tls(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_cert, first.server_cert, first.server_key, first.bundle)}
    second = ensure_tls(tmp_path)
    assert second == first
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize(
    "case",
    ["expiring", "missing_san", "missing_file", "corrupt", "key_mismatch", "foreign_issuer"],
)
def test_server_cert_regenerated_with_same_ca(tmp_path: Path, case: str) -> None:
    files = ensure_tls(tmp_path)
    ca_bytes = files.ca_cert.read_bytes()
    now = dt.datetime.now(dt.timezone.utc)
    if case == "expiring":
        old = _write_server_cert(
            files,
            not_after=now + dt.timedelta(days=10),
            sans=list(SERVER_SANS),
        )
    elif case == "missing_san":
        old = _write_server_cert(files, not_after=now + dt.timedelta(days=300), sans=[x509.DNSName("localhost")])
    elif case == "missing_file":
        old = files.server_cert.read_bytes()
        files.server_cert.unlink()
    elif case == "corrupt":
        old = b"not a certificate"
        files.server_cert.write_bytes(old)
    elif case == "key_mismatch":
        old = files.server_cert.read_bytes()
        other = ensure_tls(tmp_path / "other")
        files.server_key.write_bytes(other.server_key.read_bytes())
    else:  # a server cert from some other CA
        other = ensure_tls(tmp_path / "other")
        old = other.server_cert.read_bytes()
        files.server_cert.write_bytes(old)
        files.server_key.write_bytes(other.server_key.read_bytes())

    again = ensure_tls(tmp_path)
    assert again.ca_cert.read_bytes() == ca_bytes
    new = again.server_cert.read_bytes()
    assert new != old
    srv = _cert(again.server_cert)
    srv.verify_directly_issued_by(_cert(again.ca_cert))
    assert srv.not_valid_after_utc > now + dt.timedelta(days=300)
    # ...and it really serves.
    server = _TLSServer(ssl_context(again))
    try:
        assert _client_read(server.port, "localhost", str(again.bundle)) == b"ok"
    finally:
        server.close()
    if POSIX:
        assert again.server_key.stat().st_mode & 0o777 == 0o600


def test_invalid_ca_is_replaced_and_server_resigned(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    files.ca_cert.write_bytes(b"garbage")
    again = ensure_tls(tmp_path)
    ca = _cert(again.ca_cert)
    _cert(again.server_cert).verify_directly_issued_by(ca)
    assert again.bundle.read_bytes().endswith(again.ca_cert.read_bytes())


# --------------------------------------------------------------------------- bundle


def _pem_blocks(data: bytes) -> list[bytes]:
    import warnings

    with warnings.catch_warnings():  # a few certifi roots have non-positive serials
        warnings.simplefilter("ignore")
        return [c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(data)]


def test_bundle_is_certifi_plus_ca(tls_files: TLSFiles) -> None:
    bundle = tls_files.bundle.read_bytes()
    roots = Path(certifi.where()).read_bytes()
    assert bundle.startswith(roots)
    assert tls_files.ca_cert.read_bytes() in bundle
    assert _pem_blocks(bundle) == _pem_blocks(roots) + _pem_blocks(tls_files.ca_cert.read_bytes())
    # A public site's root is still in there: other HTTPS keeps working under SSL_CERT_FILE.
    ctx = ssl.create_default_context(cafile=str(tls_files.bundle))
    assert len(ctx.get_ca_certs()) == len(_pem_blocks(roots)) + 1


def test_stale_bundle_is_rewritten(tmp_path: Path) -> None:
    files = ensure_tls(tmp_path)
    good = files.bundle.read_bytes()
    # As if certifi had been upgraded since: the bundle no longer matches.
    files.bundle.write_bytes(b"old certifi\n" + files.ca_cert.read_bytes())
    ensure_tls(tmp_path)
    assert files.bundle.read_bytes() == good


# --------------------------------------------------------------------------- concurrency


def test_concurrent_creators_agree_on_one_ca(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from mock_server.server.tls import ensure_tls\n"
        "f = ensure_tls(Path(sys.argv[1]))\n"
        "sys.stdout.write(f.ca_cert.read_text())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, env=env)
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    on_disk = (tmp_path / "tls" / "ca.pem").read_bytes()
    assert outs == [on_disk] * len(procs)
    _cert(tmp_path / "tls" / "server.pem").verify_directly_issued_by(_cert(tmp_path / "tls" / "ca.pem"))


def test_concurrent_threads(tmp_path: Path) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(ensure_tls(tmp_path).ca_cert.read_bytes())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1


# --------------------------------------------------------------------------- state dir


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FAL_MOCK_STATE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "explicit"
    monkeypatch.delenv("FAL_MOCK_STATE_DIR")
    assert default_state_dir() == tmp_path / "xdg" / "fal-mock"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert default_state_dir() == Path.home() / ".local" / "state" / "fal-mock"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir() == Path.home() / ".local" / "state" / "fal-mock"


# --------------------------------------------------------------------------- export lines


def test_export_lines_plain() -> None:
    assert export_lines("127.0.0.1", 8765, key="mock-key", tls=None) == [
        "export FAL_KEY=mock-key",
        "export FAL_RUN_HOST=127.0.0.1:8765",
        "export FAL_QUEUE_RUN_HOST=127.0.0.1:8765/queue",
        "export FAL_OPENAPI_HOST=127.0.0.1:8765",
    ]


def test_export_lines_tls_with_space_in_path() -> None:
    d = Path("/home/me/My State/fal-mock/tls")
    tls = TLSFiles(
        ca_cert=d / "ca.pem", server_cert=d / "server.pem", server_key=d / "server-key.pem", bundle=d / "bundle.pem"
    )
    assert export_lines("127.0.0.1", 8443, key="k:secret", tls=tls) == [
        "export FAL_KEY=k:secret",
        "export FAL_RUN_HOST=127.0.0.1:8443",
        "export FAL_QUEUE_RUN_HOST=127.0.0.1:8443/queue",
        "export FAL_OPENAPI_HOST=127.0.0.1:8443",
        "export SSL_CERT_FILE='/home/me/My State/fal-mock/tls/bundle.pem'",
        "export NODE_EXTRA_CA_CERTS='/home/me/My State/fal-mock/tls/ca.pem'",
    ]


def test_export_lines_tls_real_files(tls_files: TLSFiles) -> None:
    lines = export_lines("localhost", 8443, key="abc", tls=tls_files, queue_prefix="/q/")
    assert lines[1:3] == ["export FAL_RUN_HOST=localhost:8443", "export FAL_QUEUE_RUN_HOST=localhost:8443/q"]
    assert lines[3] == "export FAL_OPENAPI_HOST=localhost:8443"
    assert lines[4].split("=", 1)[0] == "export SSL_CERT_FILE"
    assert lines[5].split("=", 1)[0] == "export NODE_EXTRA_CA_CERTS"


def test_export_lines_quoting_and_hosts() -> None:
    assert export_lines("0.0.0.0", 1, key="it's $x", tls=None, queue_prefix="") == [
        "export FAL_KEY='it'\"'\"'s $x'",
        "export FAL_RUN_HOST=127.0.0.1:1",
        "export FAL_QUEUE_RUN_HOST=127.0.0.1:1",
        "export FAL_OPENAPI_HOST=127.0.0.1:1",
    ]
    assert export_lines("::1", 8443, key="k", tls=None)[1:] == [
        "export FAL_RUN_HOST='[::1]:8443'",
        "export FAL_QUEUE_RUN_HOST='[::1]:8443/queue'",
        "export FAL_OPENAPI_HOST='[::1]:8443'",
    ]


@pytest.mark.skipif(not POSIX, reason="needs a POSIX shell")
def test_export_lines_round_trip_through_sh(tls_files: TLSFiles, tmp_path: Path) -> None:
    spaced = tmp_path / "a dir"
    tls = ensure_tls(spaced)
    lines = export_lines("127.0.0.1", 8443, key="it's $HOME `x`", tls=tls)
    script = "\n".join(lines + ['printf "%s\\n" "$FAL_KEY" "$SSL_CERT_FILE" "$NODE_EXTRA_CA_CERTS"'])
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["it's $HOME `x`", str(tls.bundle), str(tls.ca_cert)]


# --------------------------------------------------------------------------- what a leaked CA key can sign (issue 21.9)


def _leaf(files: TLSFiles, sans: list[x509.GeneralName], usage,
          not_after: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A certificate (and its key) signed with the CA's key, as someone holding a leaked key
    would make it; valid 30 days unless ``not_after`` says otherwise."""
    ca = _cert(files.ca_cert)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(_ca_key(files), hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _served_with(files: TLSFiles, tmp_path: Path, cert_pem: bytes, key_pem: bytes, hostname: str = "localhost") -> bytes:
    """What a client trusting only the mock CA reads from a server presenting ``cert_pem``."""
    (tmp_path / "leaf.pem").write_bytes(cert_pem)
    (tmp_path / "leaf-key.pem").write_bytes(key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "leaf.pem"), str(tmp_path / "leaf-key.pem"))
    server = _TLSServer(ctx)
    try:
        return _client_read(server.port, hostname, str(files.ca_cert))
    finally:
        server.close()


def test_ca_limits_email_uri_names_and_key_usage(tls_files: TLSFiles) -> None:
    ca = _cert(tls_files.ca_cert)
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = constraints.value.permitted_subtrees
    assert x509.RFC822Name("invalid") in permitted and x509.UniformResourceIdentifier("invalid") in permitted
    usage = ca.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


@pytest.mark.parametrize("extra", [x509.RFC822Name("someone@example.com"),
                                   x509.UniformResourceIdentifier("https://example.com/")])
def test_a_leaked_ca_key_cannot_sign_email_or_uri_names(tmp_path: Path, extra: x509.GeneralName) -> None:
    """OpenSSL (what Python, Node and curl use) refuses such a certificate in the handshake."""
    files = ensure_tls(tmp_path / "state")
    good = _leaf(files, [x509.DNSName("localhost")], [ExtendedKeyUsageOID.SERVER_AUTH])
    assert _served_with(files, tmp_path, *good) == b"ok"  # the same leaf without the extra name
    bad = _leaf(files, [x509.DNSName("localhost"), extra], [ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(ssl.SSLCertVerificationError, match="subtree"):
        _served_with(files, tmp_path, *bad)


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
@pytest.mark.parametrize("usage,purpose", [(ExtendedKeyUsageOID.CLIENT_AUTH, "sslclient"),
                                           (ExtendedKeyUsageOID.EMAIL_PROTECTION, "smimesign")])
def test_a_leaked_ca_key_cannot_sign_other_purposes(tmp_path: Path, usage, purpose: str) -> None:
    files = ensure_tls(tmp_path / "state")
    cert_pem, _ = _leaf(files, [x509.DNSName("localhost")], [usage])
    (tmp_path / "leaf.pem").write_bytes(cert_pem)
    check = subprocess.run(["openssl", "verify", "-CAfile", str(files.ca_cert), "-purpose", purpose,
                            str(tmp_path / "leaf.pem")], capture_output=True, text=True)
    assert check.returncode != 0, check.stdout
    assert "purpose" in (check.stdout + check.stderr)


def _old_ca(files: TLSFiles) -> None:
    """The CA as fal-mock made it before issue 21.9: DNS/IP constraints only, no key usage limit."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fal-mock local CA")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.NameConstraints(permitted_subtrees=[
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
            x509.IPAddress(ipaddress.ip_network("::1/128"))], excluded_subtrees=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (files.directory / "ca-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_a_ca_without_the_limits_is_replaced_once_with_one_line(tmp_path: Path, capsys) -> None:
    files = ensure_tls(tmp_path)
    _old_ca(files)
    old = files.ca_cert.read_bytes()
    capsys.readouterr()
    again = ensure_tls(tmp_path)
    err = capsys.readouterr().err
    assert again.ca_cert.read_bytes() != old
    assert err.count("\n") == 1 and "issued a new one" in err and str(tmp_path / "tls") in err
    ca = _cert(again.ca_cert)
    _cert(again.server_cert).verify_directly_issued_by(ca)
    assert again.bundle.read_bytes().endswith(again.ca_cert.read_bytes())
    # the new CA is current: the next start keeps it, silently
    ensure_tls(tmp_path)
    assert again.ca_cert.read_bytes() == files.ca_cert.read_bytes() and capsys.readouterr().err == ""


# --------------------------------------------------------------------------- fal's hosts (issue 18.1)


def test_ca_permits_loopback_and_fal_domains_only(tls_files: TLSFiles) -> None:
    permitted = _cert(tls_files.ca_cert).extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees
    dns = {name.value for name in permitted if isinstance(name, x509.DNSName)}
    assert dns == {"localhost", "fal.run", "fal.ai", "fal.media"}


@pytest.mark.parametrize("hostname", ["queue.fal.run", "fal.run", "rest.fal.ai", "fal.ai", "v3.fal.media"])
def test_host_certificates_for_fal_hosts_verify(tls_files: TLSFiles, hostname: str) -> None:
    server = _TLSServer(HostCertificates(tls_files).context(hostname))
    try:
        assert _client_read(server.port, hostname, str(tls_files.bundle)) == b"ok"
    finally:
        server.close()
    assert not list(tls_files.directory.glob(".host-*")), "the key file used to load it is gone"


@pytest.mark.parametrize("hostname", ["example.com", "fal.run.example.com", "evilfal.run", "localhost",
                                      "127.0.0.1", "a/b.fal.run", ""])
def test_a_certificate_for_another_name_is_never_issued(tls_files: TLSFiles, hostname: str) -> None:
    with pytest.raises(ValueError, match="fal's hosts only"):
        HostCertificates(tls_files).context(hostname)


def test_a_leaked_ca_key_cannot_vouch_for_another_site(tmp_path: Path) -> None:
    """The CA's name constraints: OpenSSL refuses its certificate for example.com in the handshake."""
    files = ensure_tls(tmp_path / "state")
    good = _leaf(files, [x509.DNSName("queue.fal.run")], [ExtendedKeyUsageOID.SERVER_AUTH])
    assert _served_with(files, tmp_path, *good, hostname="queue.fal.run") == b"ok"
    bad = _leaf(files, [x509.DNSName("example.com")], [ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(ssl.SSLCertVerificationError, match="subtree"):
        _served_with(files, tmp_path, *bad, hostname="example.com")


def test_a_loopback_only_ca_gets_a_new_one_for_fal_domains(tmp_path: Path, capsys) -> None:
    """A state folder made before the proxy mode (loopback-only names) gets a new CA, saying so once."""
    files = ensure_tls(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fal-mock local CA")])
    loopback_only = x509.NameConstraints(permitted_subtrees=[
        x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")), x509.RFC822Name("invalid"),
        x509.UniformResourceIdentifier("invalid")], excluded_subtrees=None)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(loopback_only, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (files.directory / "ca-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    capsys.readouterr()
    again = ensure_tls(tmp_path)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fal's domains" in err and "issued a new one" in err
    assert again.ca_cert.read_bytes() != cert.public_bytes(serialization.Encoding.PEM)
    assert (files.directory / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    HostCertificates(again).context("queue.fal.run")  # the new CA can vouch for fal's hosts
