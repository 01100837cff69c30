#!/usr/bin/env python3
"""Drives headless Chromium (Debian's `chromium`) through the platform's web UI.

Called by the #[ignore]d test `ui::chromium_shows_the_counts_and_charts` in
platform/tests/ui.rs, which starts the platform and checks what this prints:

    ui_chromium.py BASE_URL OUT_DIR JOBS_JSON

JOBS_JSON is a list of {"name", "username", "password", "path"} with, optionally, "pdf"
(also print the page to NAME.pdf), and
"width" and "height" (default 1366x768, a laptop screen; 390 wide is a phone, emulated as
a mobile device). For each job, in a fresh browser context (its own cookies), it logs in
through the login form, opens the path, waits for the charts to draw, saves a full-page
screenshot OUT_DIR/NAME.png and reports what the page shows. It prints one JSON object
{name: {"figures", "program", "charts", "canvases", "hscroll", "lang", "path", "squeezed",
"unwrapped", "legend", "ticks"}} on stdout:

- figures and program: the numbers shown in the `data-figure` (the counts) and
  `data-program` (the plan's targets) cells, by the attribute's value;
- squeezed: the text of every table cell (but the charts' legends) that wraps while
  narrower than 5em (a phone's `已/登/记`, a credit code over nine lines), or overflows
  its cell; a long name wrapped at a wider width is not squeezed;
- unwrapped: tables not inside a horizontally scrolling wrapper;
- legend: the chart legends' values as shown without hovering;
- ticks: each chart's x-axis labels (the canvas's text, kept in data-x-ticks);
- clipped: the class of every fixed-size panel (the cockpit's) whose content overflows it;
- height: the page's height.

The browser runs in New York's time zone (TZ), so a chart that reads the browser's zone
instead of the platform's shows it.

Standard library only: the DevTools protocol over --remote-debugging-pipe (NUL-separated
JSON on file descriptors 3 and 4), so no WebSocket client is needed.
"""

import base64
import fcntl
import json
import os
import select
import subprocess
import sys
import tempfile
import time

TIMEOUT = 30.0
WIDTH, HEIGHT = 1366, 768
BROWSER_TZ = "America/New_York"

COLLECT = """JSON.stringify({
  figures: Object.fromEntries(Array.from(document.querySelectorAll('[data-figure]'))
    .map(e => [e.dataset.figure, Number(e.textContent.trim())])),
  program: Object.fromEntries(Array.from(document.querySelectorAll('[data-program]'))
    .map(e => [e.dataset.program, Number(e.textContent.trim().replace(/,/g, ''))])),
  charts: Array.from(document.querySelectorAll('.chart')).map(e => e.dataset.ready || ''),
  canvases: document.querySelectorAll('.chart canvas').length,
  hscroll: document.documentElement.scrollWidth > document.documentElement.clientWidth,
  lang: document.documentElement.lang,
  path: location.pathname,
  squeezed: Array.from(document.querySelectorAll('table:not(.u-legend) :is(td, th)')).filter(cell => {
    const style = getComputedStyle(cell);
    const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.5;
    const range = document.createRange();
    range.selectNodeContents(cell);
    const lines = Math.round(range.getBoundingClientRect().height / line);
    const wrapped = lines > cell.querySelectorAll('br').length + 1;
    const narrow = cell.clientWidth < 5 * parseFloat(style.fontSize);
    return (wrapped && narrow) || cell.scrollWidth > cell.clientWidth + 1;
  }).map(cell => cell.textContent.trim()),
  unwrapped: Array.from(document.querySelectorAll('table:not(.u-legend)'))
    .filter(t => !t.parentElement.classList.contains('table-wrap')).length,
  legend: Array.from(document.querySelectorAll('.u-legend .u-value')).map(e => e.textContent),
  ticks: Array.from(document.querySelectorAll('.chart')).map(e => e.dataset.xTicks || ''),
  clipped: Array.from(document.querySelectorAll('.panel'))
    .filter(p => p.scrollHeight > p.clientHeight + 1 || p.scrollWidth > p.clientWidth + 1)
    .map(p => p.className),
  height: document.documentElement.scrollHeight,
})"""


class Chromium:
    """A headless Chromium and its DevTools pipe."""

    def __init__(self, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():
            # Move both ends above 4 first: the pipes themselves may be fds 3 and 4.
            read_end = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)  # inheritable, unlike the pipe's own ends
            os.dup2(write_end, 4)

        self.proc = subprocess.Popen(
            [
                os.environ.get("CHROMIUM", "chromium"),
                "--headless=new",
                "--no-sandbox",  # CI runs as root
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-extensions",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            preexec_fn=fds,
            close_fds=False,
            env={**os.environ, "TZ": BROWSER_TZ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []

    def _read(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if ready:
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, method, session):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    del self.events[i]
                    return event
            self.events.append(self._read(deadline))

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def evaluate(chrome, session, expression):
    result = chrome.call(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True, "awaitPromise": True},
        session,
    )
    if "exceptionDetails" in result:
        raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def navigate(chrome, session, url):
    chrome.events.clear()
    chrome.call("Page.navigate", {"url": url}, session)
    chrome.wait_event("Page.loadEventFired", session)


def run_job(chrome, base, out_dir, job):
    width, height = job.get("width", WIDTH), job.get("height", HEIGHT)
    context = chrome.call("Target.createBrowserContext")["browserContextId"]
    target = chrome.call(
        "Target.createTarget", {"url": "about:blank", "browserContextId": context}
    )["targetId"]
    session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    chrome.call("Page.enable", session=session)
    chrome.call("Runtime.enable", session=session)
    chrome.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 800},
        session,
    )
    navigate(chrome, session, base + "/login")
    chrome.events.clear()
    evaluate(
        chrome,
        session,
        "(() => { const f = document.querySelector('form[action=\"/login\"]');"
        f" f.username.value = {json.dumps(job['username'])};"
        f" f.password.value = {json.dumps(job['password'])}; f.submit(); }})()",
    )
    chrome.wait_event("Page.loadEventFired", session)
    if evaluate(chrome, session, "location.pathname") == "/login":
        raise RuntimeError(f"{job['name']}: login as {job['username']} failed")
    navigate(chrome, session, base + job["path"])
    deadline = time.monotonic() + TIMEOUT
    while not evaluate(
        chrome,
        session,
        "Array.from(document.querySelectorAll('.chart')).every(e => e.dataset.ready)",
    ):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    report = json.loads(evaluate(chrome, session, COLLECT))
    page_height = evaluate(chrome, session, "document.documentElement.scrollHeight")
    shot = chrome.call(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": max(page_height, height), "scale": 1},
        },
        session,
    )
    with open(os.path.join(out_dir, job["name"] + ".png"), "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    if job.get("pdf"):
        # The page printed as the browser's "Print" would: A4 from the page's @page rule.
        pdf = chrome.call("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True}, session)
        with open(os.path.join(out_dir, job["name"] + ".pdf"), "wb") as f:
            f.write(base64.b64decode(pdf["data"]))
    chrome.call("Target.disposeBrowserContext", {"browserContextId": context})
    return report


def main():
    base, out_dir, jobs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        chrome = Chromium(profile)
        try:
            reports = {job["name"]: run_job(chrome, base, out_dir, job) for job in jobs}
        finally:
            chrome.close()
    print(json.dumps(reports, ensure_ascii=False))


if __name__ == "__main__":
    main()
