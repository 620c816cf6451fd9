"""`tentacle stdio`: the script service over standard input and output, one JSON envelope per line.
The server's SSH transport runs this on a host with Python, so SSH workers use the same runner.
Requests are handled concurrently; the session ends (and its scripts are cancelled) at end of input."""

from __future__ import annotations

import json
import sys
import threading

from tentacle_agent.service import ScriptService

MAX_LINE = 512 * 1024 * 1024


def serve_stdio(service: ScriptService, stdin=None, stdout=None) -> None:
    stdin, stdout = stdin or sys.stdin.buffer, stdout or sys.stdout.buffer
    write_lock = threading.Lock()

    def answer(line: bytes) -> None:
        try:
            envelope = json.loads(line)
        except ValueError:
            envelope = None
        response = (
            service.handle(envelope)
            if envelope is not None
            else {"Id": None, "Error": {"Kind": "BadRequest", "Message": "Each line must be one JSON envelope."}}
        )
        data = json.dumps(response).encode() + b"\n"
        with write_lock:
            stdout.write(data)
            stdout.flush()

    threads = []
    for line in iter(lambda: stdin.readline(MAX_LINE), b""):
        if line.strip():
            thread = threading.Thread(target=answer, args=(line,), daemon=True)
            thread.start()
            threads.append(thread)
    service.runner.cancel_all()
    for thread in threads:
        thread.join(5)
