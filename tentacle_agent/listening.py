"""Listening mode: an HTTPS server (default port 10933) with mutual TLS.

It presents the agent's certificate and accepts only a client presenting the trusted server
certificate: that certificate is loaded as the only CA (a self-signed certificate cannot be
verified otherwise), and its thumbprint is compared again after the handshake.

Bounded against idle and hostile clients (issue 11):
1. The accept loop hands each new socket to one handshake thread, which drives every pending TLS
   handshake through a selector: a connection costs no thread before it has proved it is the server.
2. At most MAX_PENDING_HANDSHAKES wait; a new one past that pushes out the oldest, so a flood of idle
   sockets can delay the real server by one handshake, not lock it out. Each has HANDSHAKE_SECONDS.
3. A trusted connection gets a thread, at most `max_connections` at once; past that it is closed at
   once. It is closed after IDLE_SECONDS without a request's headers.
"""

from __future__ import annotations

import collections
import errno
import hashlib
import json
import logging
import selectors
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tentacle_agent import __version__
from tentacle_agent.service import ScriptService

log = logging.getLogger("tentacle.listening")
MAX_BODY = 512 * 1024 * 1024
MAX_CONNECTIONS = 200
MAX_PENDING_HANDSHAKES = 256
HANDSHAKE_SECONDS = 30
IDLE_SECONDS = 30


class ListeningServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        address,
        *,
        service: ScriptService,
        cert_path,
        key_path,
        trusted_pem: str,
        trusted_thumbprint: str,
        max_connections: int = MAX_CONNECTIONS,
    ):
        self.service = service
        self.trusted_thumbprint = trusted_thumbprint
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls.load_cert_chain(str(cert_path), str(key_path))
        self.tls.verify_mode = ssl.CERT_REQUIRED
        self.tls.load_verify_locations(cadata=trusted_pem)
        self.slots = threading.BoundedSemaphore(max(1, int(max_connections)))
        self.pending: collections.OrderedDict[ssl.SSLSocket, tuple[float, str]] = collections.OrderedDict()
        self.incoming: collections.deque = collections.deque()
        self.handshakes = selectors.DefaultSelector()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.wake_reader.setblocking(False)
        self.wake_writer.setblocking(False)  # the accept loop never waits on a wake-up already pending
        self.handshakes.register(self.wake_reader, selectors.EVENT_READ)
        self.closing = False
        super().__init__(address, Handler)
        self.handshaker = threading.Thread(target=self._handshake_loop, name="tls-handshakes", daemon=True)
        self.handshaker.start()

    def get_request(self):
        try:
            return super().get_request()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE):
                time.sleep(0.05)  # out of descriptors: do not spin on a listening socket that stays readable
            raise

    def process_request(self, request, client_address):
        """In the accept loop: no thread, no handshake here; the handshake thread takes it."""
        try:
            connection = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            connection.setblocking(False)
        except (ssl.SSLError, OSError):
            request.close()
            return
        self.incoming.append((connection, client_address[0]))
        try:
            self.wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake

    def shutdown_request(self, request):
        """Nothing left to do: connections are closed where they end."""

    def server_close(self):
        self.closing = True
        try:
            self.wake_writer.send(b"\0")
        except OSError:
            pass
        self.handshaker.join(5)
        super().server_close()

    # The handshake thread ---------------------------------------------------------------------------

    def _handshake_loop(self) -> None:
        while not self.closing:
            for key, _ in self.handshakes.select(timeout=1.0):
                if key.fileobj is self.wake_reader:
                    try:
                        while self.wake_reader.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                self._advance(key.fileobj)
            while self.incoming:
                connection, address = self.incoming.popleft()
                if len(self.pending) >= MAX_PENDING_HANDSHAKES:
                    oldest, (_, oldest_address) = next(iter(self.pending.items()))
                    log.debug("dropped a pending handshake from %s to make room", oldest_address)
                    self._drop(oldest)
                self.pending[connection] = (time.monotonic() + HANDSHAKE_SECONDS, address)
                self.handshakes.register(connection, selectors.EVENT_READ)
                self._advance(connection)
            now = time.monotonic()
            for connection, (deadline, address) in list(self.pending.items()):
                if deadline > now:
                    break  # in order of arrival: the rest are younger
                log.info(
                    "closed a connection from %s that did not finish its TLS handshake in %ss",
                    address,
                    HANDSHAKE_SECONDS,
                )
                self._drop(connection)
        for connection in list(self.pending):
            self._drop(connection)

    def _drop(self, connection) -> None:
        self.pending.pop(connection, None)
        try:
            self.handshakes.unregister(connection)
        except (KeyError, ValueError):
            pass
        try:
            connection.close()
        except OSError:
            pass

    def _advance(self, connection) -> None:
        address = self.pending[connection][1]
        try:
            connection.do_handshake()
        except ssl.SSLWantReadError:
            self.handshakes.modify(connection, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self.handshakes.modify(connection, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as error:
            if isinstance(error, ssl.SSLEOFError):
                # Closed before a handshake: the server's liveness probe (a plain TCP connect), every few seconds.
                log.debug("a connection from %s closed before its TLS handshake", address)
            elif isinstance(error, ssl.SSLError):
                log.warning(
                    "refused a connection from %s: its certificate is not the trusted server's %s (%s)",
                    address,
                    self.trusted_thumbprint,
                    getattr(error, "reason", None) or error,
                )
            self._drop(connection)
            return
        self.pending.pop(connection, None)
        self.handshakes.unregister(connection)
        seen = hashlib.sha1(connection.getpeercert(binary_form=True) or b"").hexdigest().upper()  # noqa: S324
        if seen != self.trusted_thumbprint:
            log.warning("refused a connection from %s presenting certificate %s", address, seen)
            connection.close()
            return
        if not self.slots.acquire(blocking=False):
            log.warning("refused a connection from %s: already serving the most connections allowed", address)
            connection.close()
            return
        threading.Thread(target=self._serve, args=(connection, (address, 0)), daemon=True).start()

    def _serve(self, connection, client_address) -> None:
        try:
            connection.setblocking(True)
            Handler(connection, client_address, self)  # its setup() sets the idle timeout
        except Exception:  # noqa: BLE001 - one connection's failure is logged, never the agent's end
            log.exception("a connection from %s failed", client_address[0])
        finally:
            try:
                connection.close()
            except OSError:
                pass
            self.slots.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # a body larger than wbufsize is a write of its own: Nagle would hold it ~40 ms
    wbufsize = -1  # buffered: headers and a small body leave in one TLS record (handle_one_request flushes)
    timeout = IDLE_SECONDS  # waiting for a request's headers (and between keep-alive requests)
    server: ListeningServer

    def handle_expect_100(self):
        answered = super().handle_expect_100()
        self.wfile.flush()  # the client waits for this before it sends the body
        return answered

    def log_message(self, format, *args):  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True  # the body, if any, was never read
        self._send(status, {"ErrorMessage": message})

    def do_GET(self):  # noqa: N802
        if self.path != "/":
            return self._send(404, {"ErrorMessage": "Not found."})
        self._send(200, {"Application": "Reef Tentacle", "Version": __version__})

    def do_POST(self):  # noqa: N802
        if self.path != "/script-service":
            return self._refuse(404, "Not found: POST /script-service.")
        value = self.headers.get("Content-Length")
        if value is None or self.headers.get("Transfer-Encoding"):
            return self._refuse(411, "Content-Length is required.")
        if not value.strip().isdigit():
            return self._refuse(400, f"Content-Length must be a whole number of bytes, not {value[:40]!r}.")
        length = int(value)
        if length > MAX_BODY:
            return self._refuse(413, f"Requests are at most {MAX_BODY} bytes.")
        try:
            envelope = json.loads(self.rfile.read(length))
        except ValueError:
            return self._send(400, {"ErrorMessage": "The body is not JSON."})
        self._send(200, self.server.service.handle(envelope))


def serve(instance, config: dict, service: ScriptService, stop: threading.Event) -> None:
    if not instance.trusted_path.exists() or not config.get("TrustedThumbprint"):
        raise SystemExit(
            "No trusted server certificate: run `tentacle register-worker` or `tentacle configure --trust-pem FILE`."
        )
    server = ListeningServer(
        (config.get("ListenIp") or "0.0.0.0", int(config.get("Port") or 10933)),
        service=service,
        cert_path=instance.cert_path,
        key_path=instance.key_path,
        trusted_pem=instance.trusted_path.read_text(),
        trusted_thumbprint=config["TrustedThumbprint"],
        max_connections=int(config.get("MaxConnections") or MAX_CONNECTIONS),
    )
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    log.info("listening on %s:%s, trusting server %s", *server.server_address[:2], config["TrustedThumbprint"])
    print(f"Reef tentacle listening on port {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
