"""Headless Chromium driven through the DevTools protocol over a pipe (stdlib only).

``--remote-debugging-pipe`` makes Chromium read protocol commands from its file descriptor 3
and write replies and events to descriptor 4, each message a JSON object ended by a NUL byte.
That needs no websocket client, no free debugging port and no npm package (Puppeteer and
Playwright talk to Chromium the same way). One browser serves every page of the site in one tab.
"""
from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

# Headless, isolated, and offline apart from 127.0.0.1: every host name fails to resolve, so a
# page that asks for a CDN gets an error event instead of a silent success on a connected machine.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-pipe",
]
EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """``$SESCRATCH_CHROMIUM``, else the first Chromium on ``PATH`` (Debian's is ``chromium``)."""
    if os.environ.get("SESCRATCH_CHROMIUM"):
        return os.environ["SESCRATCH_CHROMIUM"]
    return next((path for name in EXECUTABLES if (path := shutil.which(name))), None)


class ProtocolError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium process and its protocol pipe. Use as a context manager."""

    def __init__(self, executable: str, profile: Path, log: Path):
        self.log_path = log
        commands_read, self._commands = os.pipe()   # we write commands, Chromium reads fd 3
        self._replies, replies_write = os.pipe()    # Chromium writes fd 4, we read

        def wire_fds():  # runs in the child between fork and exec: the pipe ends become fds 3, 4
            high_r = fcntl.fcntl(commands_read, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(replies_write, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)  # inheritable; everything else Python opened is close-on-exec
            os.dup2(high_w, 4)

        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                preexec_fn=wire_fds, close_fds=False,
            )
        os.close(commands_read)
        os.close(replies_write)
        self._next_id = 0
        self._pending: dict[int, queue.Queue] = {}
        self._events: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def __enter__(self) -> "Chromium":
        try:
            self.call("Browser.getVersion", timeout=60)
        except (ProtocolError, TimeoutError, OSError) as exc:
            self.close()
            log = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"headless Chromium did not start: {exc}\n{log}") from exc
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("Browser.close", timeout=10)
            except (ProtocolError, TimeoutError, OSError):
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._replies, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                for waiter in list(self._pending.values()):
                    waiter.put({"error": {"message": "Chromium closed its protocol pipe"}})
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message and message["id"] in self._pending:
                    self._pending.pop(message["id"]).put(message)
                elif "method" in message:
                    self._events.put(message)

    def call(self, method: str, params: dict | None = None, *, session: str | None = None,
             timeout: float = 30) -> dict:
        """Send one command and wait for its reply; a protocol error raises ``ProtocolError``."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            waiter: queue.Queue = queue.Queue()
            self._pending[ident] = waiter
            message = {"id": ident, "method": method, "params": params or {}}
            if session:
                message["sessionId"] = session
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        try:
            reply = waiter.get(timeout=timeout)
        except queue.Empty:
            self._pending.pop(ident, None)
            raise TimeoutError(f"Chromium did not answer {method} within {timeout} s") from None
        if "error" in reply:
            raise ProtocolError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def events(self, *, until: str | None = None, session: str | None = None,
               timeout: float = 30) -> list[dict]:
        """The events received so far; with ``until``, wait for that event of ``session`` first."""
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait = max(0.0, deadline - time.monotonic()) if until else 0
                event = self._events.get(timeout=wait) if until else self._events.get_nowait()
            except queue.Empty:
                if until:
                    raise TimeoutError(f"no {until} within {timeout} s") from None
                return found
            found.append(event)
            if until and event["method"] == until and event.get("sessionId") == session:
                return found

    def new_tab(self, width: int, height: int) -> str:
        """Open a blank tab of the given viewport, attach to it, and return its session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        self.events()  # drop what attaching produced
        return session

