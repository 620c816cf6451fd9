"""Listening mode: an HTTPS server (default port 10933) with mutual TLS.

It presents the agent's certificate and accepts only a client presenting the trusted server
certificate: that certificate is loaded as the only CA (a self-signed certificate cannot be
verified otherwise), and its thumbprint is compared again after the handshake.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tentacle_agent import __version__
from tentacle_agent.service import ScriptService

log = logging.getLogger("tentacle.listening")
MAX_BODY = 512 * 1024 * 1024


class ListeningServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, address, *, service: ScriptService, cert_path, key_path, trusted_pem: str, trusted_thumbprint: str):
        self.service = service
        self.trusted_thumbprint = trusted_thumbprint
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls.load_cert_chain(str(cert_path), str(key_path))
        self.tls.verify_mode = ssl.CERT_REQUIRED
        self.tls.load_verify_locations(cadata=trusted_pem)
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # The handshake happens here, in the request's own thread, never in the accept loop.
        request.settimeout(60)
        try:
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log.warning("refused a connection from %s: its certificate is not the trusted server's %s (%s)",
                        client_address[0], self.trusted_thumbprint, getattr(error, "reason", None) or error)
            return
        seen = hashlib.sha1(connection.getpeercert(binary_form=True) or b"").hexdigest().upper()  # noqa: S324
        if seen != self.trusted_thumbprint:
            log.warning("refused a connection from %s presenting certificate %s", client_address[0], seen)
            connection.close()
            return
        connection.settimeout(None)
        Handler(connection, client_address, self)
        try:
            connection.close()
        except OSError:
            pass

    def shutdown_request(self, request):
        """Nothing left to do: finish_request closed the connection already."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # header and body are separate writes: Nagle would hold the body ~40 ms
    server: ListeningServer

    def log_message(self, format, *args):  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path != "/":
            return self._send(404, {"ErrorMessage": "Not found."})
        self._send(200, {"Application": "Reef Tentacle", "Version": __version__})

    def do_POST(self):  # noqa: N802
        if self.path != "/script-service":
            return self._send(404, {"ErrorMessage": "Not found: POST /script-service."})
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._send(411, {"ErrorMessage": "Content-Length is required."})
        if length > MAX_BODY:
            self.close_connection = True
            return self._send(413, {"ErrorMessage": f"Requests are at most {MAX_BODY} bytes."})
        try:
            envelope = json.loads(self.rfile.read(length))
        except ValueError:
            return self._send(400, {"ErrorMessage": "The body is not JSON."})
        self._send(200, self.server.service.handle(envelope))


def serve(instance, config: dict, service: ScriptService, stop: threading.Event) -> None:
    if not instance.trusted_path.exists() or not config.get("TrustedThumbprint"):
        raise SystemExit("No trusted server certificate: run `tentacle register-worker` or `tentacle configure --trust-pem FILE`.")
    server = ListeningServer((config.get("ListenIp") or "0.0.0.0", int(config.get("Port") or 10933)), service=service,
                             cert_path=instance.cert_path, key_path=instance.key_path,
                             trusted_pem=instance.trusted_path.read_text(), trusted_thumbprint=config["TrustedThumbprint"])
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    log.info("listening on %s:%s, trusting server %s", *server.server_address[:2], config["TrustedThumbprint"])
    print(f"Reef tentacle listening on port {server.server_address[1]}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
