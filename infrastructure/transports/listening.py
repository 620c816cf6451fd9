"""Listening tentacles: the server connects out over HTTPS with mutual TLS.

The server presents its own certificate; the agent's is pinned by thumbprint (a self-signed
certificate has no chain to verify, so the thumbprint *is* the trust).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
import threading
from functools import lru_cache
from urllib.parse import urlparse

from infrastructure.services.certificates import current_server_certificate, server_private_key_pem, thumbprint_of
from infrastructure.transports import TransportError, TrustError, WorkerUnreachable
from infrastructure.transports.envelope import EnvelopeTransport

MAX_RESPONSE = 64 * 1024 * 1024


@lru_cache(maxsize=4)
def _client_context(thumbprint: str) -> ssl.SSLContext:
    """An SSL context presenting the server certificate. ssl needs files: a 0700 folder of this process."""
    certificate = current_server_certificate()
    folder = tempfile.mkdtemp(prefix="reef-tls-")
    path = os.path.join(folder, "server.pem")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(certificate.certificate_pem + server_private_key_pem(certificate))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # pinned by thumbprint below instead
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(path)
    os.unlink(path)
    os.rmdir(folder)
    return context


def server_tls_context() -> ssl.SSLContext:
    return _client_context(current_server_certificate().thumbprint)


# Idle keep-alive connections per agent: a script's calls reuse one TLS session instead of a handshake each.
_idle: dict[tuple, list[http.client.HTTPSConnection]] = {}
_idle_lock = threading.Lock()
MAX_IDLE_PER_AGENT = 8
# Failures of a reused keep-alive connection that mean the agent closed it (restarted, or timed it out)
# before reading our request: reconnect once and resend. Resending is safe: every message is idempotent.
_STALE = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


class ListeningTransport(EnvelopeTransport):
    def exchange(self, envelope: dict, timeout: float) -> dict:
        uri = urlparse(self.worker.uri)
        key = (uri.hostname, uri.port or 10933, self.worker.thumbprint)
        body = json.dumps(envelope).encode()
        with _idle_lock:
            reused = _idle.get(key, []).pop() if _idle.get(key) else None
        if reused is not None:
            try:
                return self._send(reused, key, body, timeout)
            except _STALE:
                reused.close()  # and once more below, on a fresh connection
        connection = self._connect(key, timeout)
        try:
            return self._send(connection, key, body, timeout)
        except _STALE as error:
            raise TransportError(
                f"{self.worker.uri} dropped the connection before answering: "
                f"{getattr(error, 'strerror', None) or error or type(error).__name__}."
            ) from None

    def _connect(self, key: tuple, timeout: float) -> http.client.HTTPSConnection:
        """A new mutual-TLS connection whose certificate is the pinned one. Nothing has been sent yet, so
        every failure here is WorkerUnreachable (safe to retry elsewhere), or TrustError."""
        connection = http.client.HTTPSConnection(key[0], key[1], timeout=timeout, context=server_tls_context())
        try:
            connection.connect()
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError) as error:
            connection.close()
            raise WorkerUnreachable(
                f"Could not reach {self.worker.uri}: the connection closed during the TLS handshake "
                f"({error.reason or error})."
            ) from None
        except ssl.SSLError as error:
            connection.close()
            raise TrustError(
                f"The TLS handshake with {self.worker.uri} failed ({error.reason or error}); does the agent "
                f"trust this server's thumbprint {current_server_certificate().thumbprint}?"
            ) from None
        except OSError as error:
            connection.close()
            raise WorkerUnreachable(
                f"Could not reach {self.worker.uri}: {error.strerror or error or 'timed out'}."
            ) from None
        assert connection.sock is not None
        seen = thumbprint_of(connection.sock.getpeercert(binary_form=True) or b"")
        if seen != self.worker.thumbprint:
            connection.close()
            raise TrustError(
                f"{self.worker.uri} presented certificate {seen}, not the pinned {self.worker.thumbprint}: "
                "refusing to talk to it."
            )
        return connection

    def _send(self, connection: http.client.HTTPSConnection, key: tuple, body: bytes, timeout: float) -> dict:
        """One request on a connection; the connection goes back to the idle list only after a clean answer."""
        try:
            connection.sock.settimeout(timeout)
            connection.request("POST", "/script-service", body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            data = response.read(MAX_RESPONSE + 1)
            if len(data) > MAX_RESPONSE:
                raise TransportError(f"{self.worker.uri} sent an answer larger than {MAX_RESPONSE} bytes.")
            if response.status != 200:
                raise TransportError(
                    f"{self.worker.uri} answered HTTP {response.status}: {data[:200].decode(errors='replace')}"
                )
            answer = json.loads(data)
        except _STALE:
            connection.close()
            raise
        except ValueError:
            connection.close()
            raise TransportError(f"{self.worker.uri} answered with something that is not JSON.") from None
        except ssl.SSLError as error:  # TLS 1.3: the agent's refusal of our certificate arrives on the first read
            connection.close()
            raise TrustError(
                f"The TLS handshake with {self.worker.uri} failed ({error.reason or error}); does the agent "
                f"trust this server's thumbprint {current_server_certificate().thumbprint}?"
            ) from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise TransportError(f"Could not reach {self.worker.uri}: {reason}.") from None
        except TransportError:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            with _idle_lock:
                pool = _idle.setdefault(key, [])
                kept = len(pool) < MAX_IDLE_PER_AGENT
                if kept:
                    pool.append(connection)
            if not kept:
                connection.close()
        return answer
