"""Helper of the report's browser lane: open a page in headless Chromium over the DevTools pipe (stdlib only).

``open_page(path, screenshot)`` starts ``chromium --headless --remote-debugging-pipe``, loads the file,
collects console errors (console.error, uncaught exceptions, failed loads, CSP refusals), evaluates
what a person would see (figures loaded, gallery pictures, audio elements) and saves a full-page PNG.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PROBE = """JSON.stringify({
  figures: [...document.querySelectorAll('img.fig')].map(i => i.complete && i.naturalWidth > 0),
  gallery_images: [...document.querySelectorAll('#galleries img')].filter(i => i.complete && i.naturalWidth > 0).length,
  audio: document.querySelectorAll('#galleries audio').length,
  audio_playable: [...document.querySelectorAll('#galleries audio')].filter(a => a.canPlayType('audio/ogg') !== '').length,
  sections: [...document.querySelectorAll('section')].map(s => s.id),
  banner: !!document.getElementById('synthetic-banner'),
  height: document.documentElement.scrollHeight,
})"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _Pipe:
    """Chrome DevTools protocol over fds 3 (to the browser) and 4 (from it), NUL-delimited JSON."""

    def __init__(self, exe: str):
        self.profile = tempfile.mkdtemp(prefix="cvs-tf-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
                "--remote-debugging-pipe", "--no-first-run", f"--user-data-dir={self.profile}"]

        def fds():  # (moved above 9 first, so that neither lands on the other's target)
            a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(args, pass_fds=(), preexec_fn=fds, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._next()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._next())
        raise TimeoutError(method)

    def _next(self) -> dict:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_w, self._from_r):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            out.append("exception: " + p.get("exceptionDetails", {}).get("text", ""))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append("log: " + p["entry"].get("text", ""))
    return out


def open_page(path: str | Path, screenshot: str | Path, width: int = 1280) -> dict:
    """Load ``path`` in headless Chromium; return the probe's findings and ``errors``; write a full-page PNG."""
    pipe = _Pipe(chromium() or "chromium")
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": 900, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=session)
        pipe.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
        pipe.wait_for("Page.loadEventFired", timeout=120)
        value = pipe.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=session)
        found = json.loads(value["result"]["value"])
        shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=session,
                         timeout=120)
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        found["errors"] = _errors(pipe.events)
        return found
    finally:
        pipe.close()
