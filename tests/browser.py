"""Pages opened in Debian's headless Chromium: the DOM it rendered, a screenshot, and the
requests it tried to make (through a recording proxy on loopback)."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # the browser's own calls home (time, updates, sign-in): a page's requests are what
    # the recording proxy is for
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-field-trial-config",
    "--no-pings",
    "--no-default-browser-check",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/system-deps.sh (make setup)")
    return path


def _run(args: list[str], profile: Path, offline: bool, proxy: int | None) -> str:
    command = [chromium(), *FLAGS, f"--user-data-dir={profile}"]
    if proxy is not None:  # every request beyond loopback goes to the recording proxy
        command += [f"--proxy-server=http://127.0.0.1:{proxy}"]
    command += args
    if offline:  # a network namespace of its own: no interface up, not even loopback
        command = ["unshare", "--net", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dump_dom(url: str, profile: Path, offline: bool = False, proxy: int | None = None) -> str:
    """The page's DOM as Chromium rendered it."""
    return _run(["--dump-dom", url], profile, offline, proxy)


def screenshot(
    url: str, path: Path, profile: Path, size: tuple[int, int] = (1200, 2400), offline: bool = False
) -> Path:
    _run(
        [f"--window-size={size[0]},{size[1]}", f"--screenshot={path}", url], profile, offline, None
    )
    assert path.is_file()
    return path


def looks_drawn(path: Path) -> bool:
    """A screenshot with text and colour on it: more than a blank or one-colour page."""
    from PIL import Image

    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    return len(colours) > 50


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def _record(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(502)
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_CONNECT = _record

    def log_message(self, format: str, *args: object) -> None:
        pass


# Chromium's own calls home (sign-in, component updates), which no flag stops in Debian's
# build: they are not the page's.
BROWSER_HOSTS = ("accounts.google.com", "update.googleapis.com", "clients2.google.com")


def page_requests(seen: list[str]) -> list[str]:
    """The recorded requests that are not the browser's own."""
    own = [r for r in seen if any(host in r.split(" ", 1)[1][:60] for host in BROWSER_HOSTS)]
    return [r for r in seen if r not in own]


@contextmanager
def recording_proxy() -> Iterator[tuple[int, list[str]]]:
    """A proxy on loopback that refuses and records every request sent to it."""
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    parents: list[str] = field(default_factory=list)  # data-feature of enclosing blocks


class Dom(HTMLParser):
    """The elements of a rendered page, each with its text and the feature block it is in."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        blocks = [e.attrs["data-feature"] for e in self._open if "data-feature" in e.attrs]
        element = Element(tag, values, parents=blocks)
        self.elements.append(element)
        if tag not in {"meta", "br", "img", "input", "link", "hr", "wbr"}:  # void in HTML
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]
