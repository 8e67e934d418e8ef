"""Local TLS material for ``fal-mock serve --tls``.

The unmodified Python ``fal-client`` always speaks https to ``FAL_RUN_HOST`` /
``FAL_QUEUE_RUN_HOST``, so the mock must present a certificate that the client
trusts.  :func:`ensure_tls` keeps, in ``<state_dir>/tls/``:

``ca.pem`` / ``ca-key.pem``
    A local CA ("fal-mock local CA", EC P-256, 10 years).  Created once and never
    regenerated while it is present, valid and current, so a shell that trusts it keeps
    trusting it across restarts.  It carries name constraints (DNS ``localhost`` and
    ``*.localhost``, fal's domains ``fal.run``, ``fal.ai``, ``fal.media`` and their
    subdomains for the HTTPS proxy mode, IP ``127.0.0.0/8`` and ``::1``; e-mail and URI
    names only under the reserved ``invalid`` name, so none that exists) and an extended
    key usage of serverAuth alone, so that even a leaked CA key can sign nothing but server
    certificates for loopback names and fal's hosts.  A CA made before those limits (or
    with other ones) is replaced on the next start, with one line on stderr saying so.
``server.pem`` / ``server-key.pem``
    The server certificate, signed by that CA, for ``127.0.0.1``, ``::1``,
    ``localhost``, ``*.localhost`` and ``queue.localhost``.  Regenerated (by the same CA) when it is
    missing, unreadable, expiring within 30 days, lacking a SAN, or not issued by
    the current CA.
``bundle.pem``
    certifi's ``cacert.pem`` followed by the mock CA, for ``SSL_CERT_FILE``
    (which *replaces* the default roots, so other HTTPS keeps working).  Rewritten
    whenever its expected content changes (a certifi update, a new CA).

:class:`HostCertificates` issues, in memory, a certificate for one of fal's hosts
(``queue.fal.run``, ``v3.fal.media``...) when the HTTPS proxy mode first needs it, signed
by the same CA; it refuses every other name (a certificate for ``example.com`` is never made).

Every file is written to a temporary file and moved into place with
``os.replace``; the whole check-and-create runs under an advisory lock on
``tls/.lock``, so two processes starting at once agree on one CA.  Key files
are mode 0600 and the folder 0700.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import ssl
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import re

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mock_server.core.paths import FAL_DOMAINS, is_fal_name

__all__ = [
    "TLSFiles",
    "HostCertificates",
    "ensure_tls",
    "ssl_context",
    "uvicorn_ssl_kwargs",
    "SERVER_SANS",
]

CA_COMMON_NAME = "fal-mock local CA"
CA_VALIDITY = _dt.timedelta(days=3650)
# Apple rejects TLS server certs valid longer than 825 days, and those from public
# roots longer than 398; stay under both.  The CA does not change on renewal.
SERVER_VALIDITY = _dt.timedelta(days=397)
RENEW_BEFORE = _dt.timedelta(days=30)
# Certificates start slightly in the past to tolerate clock skew.
BACKDATE = _dt.timedelta(hours=1)

#: The names the server certificate must cover.  OpenSSL (Python, Node, curl) will not
#: match a wildcard with a single label after it, so ``*.localhost`` alone does not cover
#: ``queue.localhost`` (fal-client's default queue host) there; name it explicitly too.
SERVER_SANS: tuple[x509.GeneralName, ...] = (
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
    x509.DNSName("localhost"),
    x509.DNSName("*.localhost"),
    x509.DNSName("queue.localhost"),
)

_CA_NAME_CONSTRAINTS = x509.NameConstraints(
    permitted_subtrees=[
        x509.DNSName("localhost"),  # also covers every *.localhost name
        # fal's hosts and their subdomains (a DNS constraint covers the name and every name
        # under it, RFC 5280 4.2.1.10): the HTTPS proxy mode's certificates
        *(x509.DNSName(domain) for domain in FAL_DOMAINS),
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
        # A type named in the permitted subtrees restricts every name of that type: e-mail
        # addresses and URIs only on the reserved host "invalid" (RFC 2606), i.e. none real.
        x509.RFC822Name("invalid"),
        x509.UniformResourceIdentifier("invalid"),
    ],
    excluded_subtrees=None,
)
#: What the CA's certificates may be used for: TLS servers only (no client, code or
#: e-mail signing), honoured by OpenSSL on every certificate of the chain.
_CA_EXTENDED_KEY_USAGE = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server-key.pem"
BUNDLE = "bundle.pem"
LOCK = ".lock"


@dataclass(frozen=True)
class TLSFiles:
    """Paths of the TLS material inside ``<state_dir>/tls/``."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    bundle: Path

    @property
    def directory(self) -> Path:
        return self.ca_cert.parent


def ensure_tls(state_dir: Path) -> TLSFiles:
    """Create (or reuse) the CA, server certificate and bundle under ``state_dir/tls``.

    Idempotent and safe to call from several processes at once.  A folder that cannot be
    used (a file in its place, not writable) raises
    :class:`~mock_server.features.state_folder.StateDirUnusable` with a one-line message.
    """
    tls_dir = Path(state_dir).expanduser() / "tls"
    try:
        return _ensure_tls(tls_dir)
    except OSError as exc:
        from mock_server.features.state_folder import StateDirUnusable

        raise StateDirUnusable(
            f"fal-mock: the TLS folder {tls_dir} cannot be used ({exc.strerror or exc}"
            f"{': ' + str(exc.filename) if exc.filename else ''}): make the state folder a writable "
            "folder (or move the file in its place away), or give another --state-dir") from None


def _ensure_tls(tls_dir: Path) -> TLSFiles:
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _chmod(tls_dir, 0o700)
    files = TLSFiles(
        ca_cert=tls_dir / CA_CERT,
        server_cert=tls_dir / SERVER_CERT,
        server_key=tls_dir / SERVER_KEY,
        bundle=tls_dir / BUNDLE,
    )
    ca_key_path = tls_dir / CA_KEY
    with _locked(tls_dir / LOCK):
        now = _now()
        ca = _load_pair(files.ca_cert, ca_key_path)
        if ca is not None and _ca_usable(ca[0], now) and not _ca_current(ca[0]):
            print(f"fal-mock: the local CA in {tls_dir} predates its current limits (name constraints: "
                  "loopback and fal's domains; server-only key usage); issued a new one: trust the new "
                  "bundle.pem / ca.pem",
                  file=sys.stderr)
            ca = None
        if ca is None or not _ca_usable(ca[0], now):
            _write_pair(files.ca_cert, ca_key_path, *_make_ca(now))
            # Re-read what is on disk: without a working lock another process may have
            # written its CA in the meantime, and theirs is as good as ours.
            ca = _load_pair(files.ca_cert, ca_key_path)
            if ca is None:  # pragma: no cover - only if something else removes files mid-way
                raise RuntimeError(f"could not create a usable CA in {tls_dir}")
        ca_cert, ca_key = ca
        _chmod(ca_key_path, 0o600)

        server = _load_pair(files.server_cert, files.server_key)
        if server is None or not _server_usable(server[0], ca_cert, now):
            _write_pair(files.server_cert, files.server_key, *_make_server(ca_cert, ca_key, now))
        _chmod(files.server_key, 0o600)

        expected_bundle = _bundle_bytes(files.ca_cert.read_bytes())
        if _read_or_none(files.bundle) != expected_bundle:
            _atomic_write(files.bundle, expected_bundle, 0o644)
    return files


def ssl_context(files: TLSFiles) -> ssl.SSLContext:
    """A server-side context presenting the mock's certificate (TLS 1.2+)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=str(files.server_cert), keyfile=str(files.server_key))
    return ctx


def uvicorn_ssl_kwargs(files: TLSFiles) -> dict[str, str]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` to serve HTTPS."""
    return {"ssl_certfile": str(files.server_cert), "ssl_keyfile": str(files.server_key)}


# A DNS name of letters, digits and hyphens (what CONNECT names and X.509 A-labels allow).
_DNS_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


class HostCertificates:
    """Server contexts for fal's hosts, each presenting a certificate for that one name,
    issued by the local CA on first use and kept for the process's life (the HTTPS proxy
    mode, :mod:`mock_server.server.https_proxy`).  Nothing is written to the state folder
    but a short-lived 0600 file inside ``tls/`` (``ssl`` loads certificates from files only)."""

    KEPT = 256  # host names are the client's to vary (any *.fal.media): the cache is bounded

    def __init__(self, files: TLSFiles) -> None:
        self._dir = files.directory
        pair = _load_pair(files.ca_cert, files.directory / CA_KEY)
        if pair is None:
            raise ValueError(f"no usable local CA in {files.directory}")
        self._ca_cert, self._ca_key = pair
        self._contexts: dict[str, ssl.SSLContext] = {}

    @staticmethod
    def may_issue(name: str) -> bool:
        """Whether ``name`` (lower case, no port) is one of fal's hosts: the only names issued."""
        return bool(_DNS_NAME.fullmatch(name)) and is_fal_name(name)

    def context(self, name: str) -> ssl.SSLContext:
        """A server context for ``name``; ValueError for a name that is not fal's."""
        ctx = self._contexts.get(name)
        if ctx is None:
            ctx = self._contexts[name] = self._issue(name)
        return ctx

    def _issue(self, name: str) -> ssl.SSLContext:
        if not self.may_issue(name):
            raise ValueError(f"fal-mock issues certificates for fal's hosts only, not {name!r}")
        if len(self._contexts) >= self.KEPT:
            self._contexts.clear()
        cert, key = _make_leaf(self._ca_cert, self._ca_key, _now(), name, (x509.DNSName(name),))
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["http/1.1"])  # the server speaks HTTP/1.1 only
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".host-", suffix=".pem")  # 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            ctx.load_cert_chain(tmp)
        finally:
            os.unlink(tmp)
        return ctx


# ---------------------------------------------------------------------------
# generation


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _make_ca(now: _dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fal-mock"),
        ]
    )
    not_before = now - BACKDATE
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(_CA_NAME_CONSTRAINTS, critical=True)
        .add_extension(_CA_EXTENDED_KEY_USAGE, critical=False)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_server(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: _dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    return _make_leaf(ca_cert, ca_key, now, "localhost", SERVER_SANS)


def _make_leaf(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: _dt.datetime,
    common_name: str, sans: tuple[x509.GeneralName, ...],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    not_before = now - BACKDATE
    not_after = min(not_before + SERVER_VALIDITY, ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fal-mock"),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


# ---------------------------------------------------------------------------
# validation


def _load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The certificate and its key, or None if either is missing, unreadable or they do not match."""
    cert_pem = _read_or_none(cert_path)
    key_pem = _read_or_none(key_path)
    if cert_pem is None or key_pem is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def _ca_usable(cert: x509.Certificate, now: _dt.datetime) -> bool:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        cert.verify_directly_issued_by(cert)  # self-signed and intact
    except Exception:  # missing extension, bad signature, unsupported key type
        return False
    return bool(bc.ca) and cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def _ca_current(cert: x509.Certificate) -> bool:
    """Whether the CA carries exactly today's limits (see the module doc)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return constraints == _CA_NAME_CONSTRAINTS and list(usage) == list(_CA_EXTENDED_KEY_USAGE)


def _server_usable(cert: x509.Certificate, ca_cert: x509.Certificate, now: _dt.datetime) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:
        return False
    if not (cert.not_valid_before_utc <= now and now + RENEW_BEFORE < cert.not_valid_after_utc):
        return False
    if cert.not_valid_after_utc - cert.not_valid_before_utc > _dt.timedelta(days=825):
        return False
    try:
        sans = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        ekus = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return set(SERVER_SANS) <= sans and ExtendedKeyUsageOID.SERVER_AUTH in ekus


def _bundle_bytes(ca_pem: bytes) -> bytes:
    roots = Path(certifi.where()).read_bytes()
    if not roots.endswith(b"\n"):
        roots += b"\n"
    return roots + b"\n# fal-mock local CA\n" + ca_pem


# ---------------------------------------------------------------------------
# files


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    # Key first: a reader that sees the new cert with the old key rejects the pair
    # (public keys differ) and, under the lock, that cannot happen anyway.
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _atomic_write(key_path, key_pem, 0o600)
    _atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    # mkstemp creates the file 0600, so a key is never readable by others, even briefly.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _chmod(Path(tmp), mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _chmod(path: Path, mode: int) -> None:
    if os.name == "nt":  # POSIX modes do not apply
        return
    try:
        if (path.stat().st_mode & 0o777) != mode:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock between processes (flock on POSIX, msvcrt on Windows)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        else:  # pragma: no cover - Windows
            import msvcrt

            while True:
                try:
                    msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ~10 s; keep waiting
                    continue
            try:
                yield
            finally:
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)
