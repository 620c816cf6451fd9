"""Polling mode: the agent connects out to the server's polling endpoint and asks for work.

It presents its own certificate and pins the server's thumbprint. Requests run concurrently (a long
GetStatus never blocks another script). After work it polls again at once; after an error it backs
off exponentially with jitter, up to a minute. Works through an HTTP proxy (CONNECT).

Delivery: the ids of the requests a poll brought are acknowledged on the next poll (`&ack=id1,id2`),
so the server can tell a request that never arrived (it delivers a StartScript again, once) from one
that did. Acknowledgements not yet sent survive a failed poll (at most MAX_PENDING_ACKS kept).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import random
import ssl
import threading
from urllib.parse import urlparse

from tentacle_agent.service import ScriptService

log = logging.getLogger("tentacle.polling")
WAIT_SECONDS = 30
MAX_PENDING_ACKS = 1000
ACKS_PER_POLL = 200


class PollingError(Exception):
    pass


class PollingClient:
    def __init__(self, instance, config: dict, service: ScriptService):
        address = config.get("ServerCommsAddress")
        if not address or not config.get("TrustedThumbprint"):
            raise SystemExit(
                "Polling needs the server's polling address and thumbprint: run `tentacle register-worker` first."
            )
        self.url = urlparse(address)
        self.subscription = config["Subscription"]
        self.trusted = config["TrustedThumbprint"]
        self.proxy = urlparse(config["Proxy"]) if config.get("Proxy") else None
        self.service = service
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls.check_hostname, self.tls.verify_mode = False, ssl.CERT_NONE  # pinned by thumbprint instead
        self.tls.load_cert_chain(str(instance.cert_path), str(instance.key_path))

    def _connection(self, timeout: float) -> http.client.HTTPSConnection:
        host, port = self.url.hostname, self.url.port or 10943
        if self.proxy:
            connection = http.client.HTTPSConnection(
                self.proxy.hostname, self.proxy.port or 3128, timeout=timeout, context=self.tls
            )
            connection.set_tunnel(host, port)
        else:
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self.tls)
        connection.connect()
        seen = hashlib.sha1(connection.sock.getpeercert(binary_form=True) or b"").hexdigest().upper()  # noqa: S324
        if seen != self.trusted:
            connection.close()
            raise PollingError(
                f"the server presented certificate {seen}, not the trusted {self.trusted}: refusing to talk to it"
            )
        return connection

    def _exchange(self, method: str, path: str, body: dict | None = None, timeout: float = 60) -> dict:
        connection = self._connection(timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            if response.status != 200:
                raise PollingError(
                    f"the server answered HTTP {response.status}: {payload[:300].decode(errors='replace')}"
                )
            return json.loads(payload)
        finally:
            connection.close()

    def _answer(self, envelope: dict) -> None:
        response = self.service.handle(envelope)
        for attempt in range(5):
            try:
                self._exchange("POST", f"/poll/{self.subscription}/responses", {"Responses": [response]})
                return
            except (OSError, PollingError, http.client.HTTPException, ValueError) as error:
                log.warning("could not return the answer to %s (%s); retrying", envelope.get("Method"), error)
                threading.Event().wait(min(10, 2**attempt))

    def run(self, stop: threading.Event) -> None:
        failures = 0
        acks: list[str] = []
        print(f"Reef tentacle polling {self.url.geturl()} as poll://{self.subscription}/", flush=True)
        while not stop.is_set():
            sending = acks[:ACKS_PER_POLL]
            ack = "&ack=" + ",".join(sending) if sending else ""
            try:
                body = self._exchange(
                    "GET", f"/poll/{self.subscription}?wait={WAIT_SECONDS}{ack}", timeout=WAIT_SECONDS + 30
                )
                failures = 0
                del acks[: len(sending)]
            except PollingError as error:
                log.error("%s", error)
                failures += 1
            except (OSError, http.client.HTTPException, ValueError) as error:
                log.warning("polling %s failed: %s", self.url.netloc, error)
                failures += 1
            else:
                for envelope in body.get("Requests", []):
                    if isinstance(envelope.get("Id"), str):
                        acks.append(envelope["Id"])
                    threading.Thread(target=self._answer, args=(envelope,), daemon=True).start()
                del acks[:-MAX_PENDING_ACKS]
                continue  # straight back for more: no wait right after work
            stop.wait(min(60, 2 ** min(failures, 6)) * random.uniform(0.5, 1.0))
