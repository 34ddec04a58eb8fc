#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""A headless Chromium driven over the DevTools protocol, standard library only.

Chromium's --remote-debugging-pipe speaks the protocol on fds 3 (commands
in) and 4 (replies and events out), one JSON message per NUL-terminated
chunk: no WebSocket client needed. Used by test_report.py and test_diff.py
to open agentprof's HTML pages the way a person would, and to read what
they rendered.

    with browser.Browser(width=1366, height=768) as b:
        b.open("file:///tmp/report.html")
        b.eval("document.title")
        b.screenshot("/tmp/shot.png")
        b.errors   # console errors, exceptions, failed loads

Chromium comes from Debian's `chromium` package (tools/deps.sh).
"""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find():
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, width=1366, height=768, timeout=60):
        exe = find()
        if not exe:
            raise RuntimeError("no chromium: install Debian's chromium (tools/deps.sh)")
        self.timeout = timeout
        self.errors = []
        self.events = []
        self._id = 0
        self._buf = b""
        self._profile = tempfile.mkdtemp(prefix="agentprof-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._evt_r, evt_w = os.pipe()
        # The child's fd 3 reads our commands, its fd 4 writes to us.
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-dev-shm-usage", "--remote-debugging-pipe",
             "--user-data-dir=" + self._profile, "--window-size=%d,%d" % (width, height),
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            pass_fds=(3, 4), preexec_fn=lambda: _child_fds(cmd_r, evt_w))
        os.close(cmd_r)
        os.close(evt_w)
        self.session = None
        target = self._page_target()
        r = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session = r["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _page_target(self):
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for t in self.call("Target.getTargets")["targetInfos"]:
                if t["type"] == "page":
                    return t["targetId"]
            time.sleep(0.1)
        raise RuntimeError("chromium opened no page")

    def _send(self, msg):
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self._cmd_w, data)
            data = data[n:]

    def _recv(self):
        while b"\0" not in self._buf:
            # A hung browser fails the test instead of stalling the suite.
            if not select.select([self._evt_r], [], [], self.timeout)[0]:
                raise RuntimeError("chromium sent nothing for %d s" % self.timeout)
            chunk = os.read(self._evt_r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe: %s" % self._stderr())
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(msg)
        if "method" in msg:
            self._event(msg)
        return msg

    def _event(self, msg):
        self.events.append(msg)
        m, p = msg["method"], msg.get("params", {})
        if m == "Runtime.exceptionThrown":
            self.errors.append("exception: %s" % p["exceptionDetails"].get("text"))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console.%s: %s" % (p["type"], [a.get("value") for a in p["args"]]))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            self.errors.append("log: %s %s" % (p["entry"].get("text"), p["entry"].get("url", "")))
        elif m == "Network.loadingFailed":
            self.errors.append("load failed: %s" % p.get("errorText"))

    def call(self, method, params=None):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self._send(msg)
        while True:
            r = self._recv()
            if r.get("id") == self._id:
                if "error" in r:
                    raise RuntimeError("%s failed: %s" % (method, r["error"]))
                return r.get("result", {})

    def wait_event(self, method, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = len(self.events)
        while time.monotonic() < deadline:
            for e in self.events[seen:]:
                if e["method"] == method:
                    return e
            seen = len(self.events)
            self._recv()
        raise RuntimeError("no %s within the timeout" % method)

    def open(self, url):
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError("evaluating %r threw %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def screenshot(self, path, full_page=False):
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            m = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": m["width"], "height": m["height"],
                              "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def _stderr(self):
        try:
            return self.proc.stderr.read().decode(errors="replace")[-2000:]
        except (OSError, ValueError):
            return ""

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._evt_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _child_fds(cmd_r, evt_w):
    """In the child, before exec: the command pipe on fd 3, the reply pipe on fd 4."""
    os.dup2(cmd_r, 3)
    os.dup2(evt_w, 4)


def png_size(data):
    """(width, height) of PNG bytes, from the IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
