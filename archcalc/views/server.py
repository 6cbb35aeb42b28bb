"""`archcalc serve`: a local page with the spec's YAML on the left and its report on the right,
analyzed again a moment after every edit.

    server = Server("specs/alexnet.yaml", port=8780)   # binds; raises ArchcalcError if it cannot
    server.serve_forever()

The requests (the page's script makes them; nothing takes a file path from the client):
- ``GET /``: the editor page (views/web/editor.*) holding the spec's text;
- ``POST /analyze``, the YAML as the body: ``{"report": the report fragment (views/html.py) or null
  when the text does not load, "error": {line, column, text} or null, "warnings", "diagram": key,
  "ms" and "cpu_ms": the analysis's wall and CPU time}``;
- ``GET /diagram/KEY``: that report's diagram as SVG (Graphviz, under a timeout), drawn once per
  distinct drawing: the table comes back in milliseconds, the drawing (up to a few hundred ms for
  the largest shipped specs) follows it;
- ``POST /save``, the YAML as the body: written over SPEC atomically (fileio), only when the file
  still holds what the page last loaded or saved (``X-Archcalc-Base``, its SHA-256): of two saves
  from the same state, one is written and the other refused, never a mix.

Limits: bodies of at most MAX_BODY bytes of UTF-8 (the spec loader's own limits on nesting and
alias expansion apply within), the analysis in a worker process stopped after ANALYSIS_SECONDS
(a worker is a separate process, so a runaway analysis is killed, not waited for, and the server
keeps serving), Graphviz stopped after DIAGRAM_SECONDS, POSTs only with the page's token and every
request only with a Host that names this server (another web site cannot drive it, even through
DNS rebinding).

Why the standard library (http.server's ThreadingHTTPServer) rather than an ASGI framework: four
small routes on localhost for one person, CPU-bound work that must run in killable worker
processes anyway (an async loop would not make an analysis stoppable), and no dependency added
to a tool whose static path needs only PyYAML, click and rich. The load benchmark
(benchmarks/web_load.py) shows what it sustains.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..errors import ArchcalcError, SpecError
from ..fileio import irreplaceable, write_text
from ..gcpause import paused_gc
from . import escape, html

MAX_BODY = 1_000_000      # bytes of YAML an edit or a save may send: the largest shipped spec is 20 kB
ANALYSIS_SECONDS = 5.0    # an analysis still running then is stopped (its worker killed and replaced)
DIAGRAM_SECONDS = 10.0    # Graphviz's dot, likewise
QUEUE_SECONDS = 10.0      # a request waits this long for a free worker, then is refused (503)
WORKER_MEMORY = 2 << 30   # address space of a worker (bytes): a YAML bomb fails there, not in the machine
EDITOR_COLUMNS = ("kind", "output", "formula", "params")  # beside the editor and the diagram; the totals say the rest
DIAGRAMS = 64             # drawings kept (their DOT source, then their SVG), least recently used dropped
STARTER = """\
# archcalc serve without a SPEC: edit freely; saving needs a file (archcalc serve my.yaml)
name: LeNet-5
input: [1, 32, 32]
layers:
  - conv: {filters: 6, kernel: 5, activation: tanh, name: C1}
  - avgpool: {kernel: 2, stride: 2, name: S2}
  - conv: {filters: 16, kernel: 5, activation: tanh, name: C3}
  - avgpool: {kernel: 2, stride: 2, name: S4}
  - flatten
  - dense: {units: 120, activation: tanh, name: C5}
  - dense: {units: 84, activation: tanh, name: F6}
  - dense: {units: 10, name: output}
"""


class Refused(Exception):
    """A request answered with an HTTP error status and one clear sentence."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_spec(path: str) -> str:
    """The text of the SPEC to edit: a regular UTF-8 file of at most MAX_BODY bytes."""
    kind = irreplaceable(path)
    if kind:
        raise ArchcalcError(f"cannot edit {path}: it is {kind}", hint="give a spec file")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BODY + 1)
    except FileNotFoundError:
        raise ArchcalcError(f"no such file: {path}",
                            hint="create it first (cp specs/alexnet.yaml mine.yaml), or start without a SPEC") from None
    except OSError as exc:
        raise ArchcalcError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_BODY:
        raise ArchcalcError(f"{path} is larger than {MAX_BODY:,} bytes, the editor's limit")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ArchcalcError(f"{path} is not UTF-8 text", hint="save it as UTF-8") from None


# --- the analysis, in a worker process ---------------------------------------------------------

@paused_gc  # as every command runs: a report of many layers builds many objects and no cycles
def analyze_text(text: str, name: str) -> dict:
    """What /analyze answers for ``text`` (read as the file ``name``), and the DOT to draw it."""
    from ..analysis import analyze
    from ..spec import parse
    from ..spec.advice import input_warnings
    from ..spec.source import Mapping, load_text
    from .render import to_dot
    from .report import TableOptions

    started, cpu = time.perf_counter(), time.process_time()

    def timed(answer: dict) -> dict:  # wall and CPU milliseconds (the CPU's apart from other work on the machine)
        return {**answer, "ms": round((time.perf_counter() - started) * 1000, 1),
                "cpu_ms": round((time.process_time() - cpu) * 1000, 1)}

    try:
        data = load_text(text, name)
        if isinstance(data, Mapping) and "include" in data:  # a path from the page: never followed
            raise SpecError("include: is not read here: archcalc serve reads no file but the spec it edits",
                            hint="write the blocks into the spec, or inspect it from the command line",
                            location=data.key_location("include"))
        spec = parse(data, name)
    except SpecError as error:
        return timed({"report": None, "error": error_dict(error), "warnings": [], "dot": None})
    analysis = analyze(spec, partial=True)
    return timed({"report": html.fragment(analysis, html.Diagram(), options=TableOptions(EDITOR_COLUMNS)),
                  "error": error_dict(analysis.error) if analysis.error else None,
                  "warnings": [str(warning) for warning in input_warnings(spec)], "dot": to_dot(analysis)})


def error_dict(error: SpecError) -> dict:
    """The error for the editor: where (1-based line and column, or none), and the whole text as
    the command line prints it (with the hint: the fixes)."""
    where = error.location
    return {"line": where.line if where else None, "column": where.column if where else None,
            "text": str(error)}


def _work(connection, name: str) -> None:
    """A worker's loop: a text in, analyze_text's answer out, until the server closes the pipe."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    while True:
        try:
            text = connection.recv()
        except EOFError:
            return
        try:
            answer = analyze_text(text, name)
        except MemoryError:
            answer = {"refused": f"the analysis needed more than {WORKER_MEMORY >> 30} GiB of memory: stopped"}
        except RecursionError:
            answer = {"refused": "the spec nests too deeply to analyze"}
        connection.send(answer)


class Workers:
    """Up to ``count`` worker processes, started when first needed, each analyzing one text at a
    time; one that overruns is killed and replaced."""

    def __init__(self, count: int, name: str, timeout: float = ANALYSIS_SECONDS):
        methods = multiprocessing.get_all_start_methods()
        # forkserver: workers forked from a clean, single-threaded process with archcalc imported
        # (fast to replace; forking this threaded server itself is unsafe)
        self.context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            self.context.set_forkserver_preload(["archcalc.views.server"])
        self.count = count
        self.name = name
        self.timeout = timeout
        self.idle: queue.Queue = queue.Queue()
        self.all: list = []
        self.lock = threading.Lock()

    def _start(self):
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_work, args=(child, self.name), daemon=True)
        process.start()
        child.close()
        self.all.append(process)
        return process, parent

    def _take(self):
        """An idle worker, a new one while fewer than ``count`` run, else the next to be free."""
        with self.lock:
            if self.idle.empty() and len(self.all) < self.count:
                return self._start()
        try:
            return self.idle.get(timeout=QUEUE_SECONDS)
        except queue.Empty:
            raise Refused(503, f"every worker is busy (waited {QUEUE_SECONDS:g} s): try again") from None

    def analyze(self, text: str) -> dict:
        worker = self._take()
        process, connection = worker
        try:
            connection.send(text)
            if connection.poll(self.timeout):
                answer = connection.recv()
                self.idle.put(worker)
                if "refused" in answer:
                    raise Refused(422, answer["refused"])
                return answer
            failure = Refused(422, f"the analysis took longer than {self.timeout:g} s: stopped "
                                   "(a spec this slow to analyze is too big to edit live)")
        except (EOFError, OSError):
            failure = Refused(422, "the analysis stopped: its worker ended (out of memory, or it could not start) "
                                   "and was replaced")
        process.kill()
        process.join()
        connection.close()
        with self.lock:
            self.all.remove(process)
            self.idle.put(self._start())
        raise failure

    def close(self) -> None:
        for process in self.all:
            process.kill()
            process.join()


# --- the server --------------------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    """The editor's web server for one SPEC (or none: then nothing can be saved)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str | None, host: str = "127.0.0.1", port: int = 8780, *, workers: int = 2,
                 log=None):
        self.path = path
        self.name = os.path.basename(path) if path else "untitled.yaml"
        self.text = read_spec(path) if path else STARTER
        self.token = secrets.token_urlsafe(24)
        self.log = log or (lambda line: None)
        self.save_lock = threading.Lock()
        self.diagrams: OrderedDict = OrderedDict()  # key -> DOT source, then SVG bytes once drawn
        self.diagram_lock = threading.Lock()
        self.workers = Workers(workers, self.name)
        try:
            super().__init__((host, port), Handler)
        except (OSError, UnicodeError, ValueError) as exc:  # busy, no such address, a host no resolver takes
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ArchcalcError(f"cannot listen on {escape.visible(host)}:{port}: {reason}",
                                hint="choose another --port (0: any free one), or --host 127.0.0.1") from None
        bound_host, bound_port = self.server_address[:2]
        self.url = f"http://{'localhost' if bound_host in ('127.0.0.1', '::1') else bound_host}:{bound_port}/"
        self.hosts = {f"{name}:{bound_port}" for name in ("127.0.0.1", "localhost", "[::1]", host)}
        self.any_host = host in ("0.0.0.0", "::", "")

    def server_close(self) -> None:
        super().server_close()
        self.workers.close()

    # the answers, apart from HTTP

    def keep_diagram(self, dot: str) -> str:
        key = digest(dot)
        with self.diagram_lock:
            self.diagrams[key] = self.diagrams.get(key, dot)
            self.diagrams.move_to_end(key)
            while len(self.diagrams) > DIAGRAMS:
                self.diagrams.popitem(last=False)
        return key

    def diagram(self, key: str) -> str:
        """The SVG of a drawing /analyze announced (drawn on first request, then kept)."""
        from .render import svg_element

        with self.diagram_lock:
            kept = self.diagrams.get(key)
        if kept is None:
            raise Refused(404, "no such diagram (drawn for an older edit): analyze again")
        if kept.startswith("<svg"):
            return kept
        try:
            svg = svg_element(kept, DIAGRAM_SECONDS)
        except ArchcalcError as exc:
            raise Refused(422, exc.message) from None
        with self.diagram_lock:
            if key in self.diagrams:
                self.diagrams[key] = svg
        return svg

    def save(self, text: str, base: str) -> str:
        """Write ``text`` over SPEC if it still holds the text whose SHA-256 is ``base``; the new digest."""
        if self.path is None:
            raise Refused(409, "started without a SPEC: there is no file to save to "
                               "(copy the text, or restart with archcalc serve FILE)")
        with self.save_lock:
            try:
                current = read_spec(self.path)
            except ArchcalcError as exc:
                raise Refused(409, f"not saved: {exc.message}") from None
            if digest(current) != base:
                raise Refused(409, f"not saved: {self.name} changed since this page loaded or saved it "
                                   "(another page or program wrote it); reload the page to edit the new text")
            try:
                write_text(self.path, text)
            except ArchcalcError as exc:
                raise Refused(500, f"not saved: {exc.message}") from None
            self.text = text
        return digest(text)


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "archcalc"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait for a delayed ACK

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route) -> None:
        self._unread = self.command == "POST"  # until _body reads it
        try:
            self._check_host()
            status, kind, body = route(urlsplit(self.path).path)
        except Refused as refused:
            status, kind, body = refused.status, "application/json", _json({"refused": refused.message})
        except Exception as exc:  # a bug: one line in the log, a clear answer, and the server goes on
            self.server.log(f"error: {self.command} {self.path}: {type(exc).__name__}: {exc}")
            status, kind, body = 500, "application/json", _json({"refused": f"internal error: {exc}"})
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")  # no other page may frame Save under a decoy
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")  # (a <meta> policy cannot say it)
        if self._unread:
            self.send_header("Connection", "close")  # the body was not read: the connection cannot go on
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _check_host(self) -> None:
        if not self.server.any_host and self.headers.get("Host", "") not in self.server.hosts:
            raise Refused(403, "this server answers only requests addressed to it (Host: "
                               + next(iter(sorted(self.server.hosts))) + ")")

    def _get(self, path: str):
        if path == "/":
            page = editor_page(self.server).encode("utf-8")
            return 200, "text/html; charset=utf-8", page
        if path.startswith("/diagram/"):
            return 200, "image/svg+xml", self.server.diagram(path.removeprefix("/diagram/")).encode("utf-8")
        raise Refused(404, f"no such page: {path}")

    def _post(self, path: str):
        if path not in ("/analyze", "/save"):
            raise Refused(404, f"no such request: POST {path}")
        if not secrets.compare_digest(self.headers.get("X-Archcalc-Token", ""), self.server.token):
            raise Refused(403, "this request does not come from the editor's page (no token): reload the page")
        text = self._body()
        if path == "/analyze":
            answer = self.server.workers.analyze(text)
            dot = answer.pop("dot")
            answer["diagram"] = self.server.keep_diagram(dot) if dot else None
            return 200, "application/json", _json(answer)
        saved = self.server.save(text, self.headers.get("X-Archcalc-Base", ""))
        return 200, "application/json", _json({"saved": self.server.name, "base": saved})

    def _body(self) -> str:
        """The request's body as text: at most MAX_BODY bytes, UTF-8."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise Refused(411, "send the text with a Content-Length, not chunked")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise Refused(411, "a Content-Length is needed")
        if int(length) > MAX_BODY:
            raise Refused(413, f"the text is {int(length):,} bytes; the editor's limit is {MAX_BODY:,}")
        raw = self.rfile.read(int(length))
        self._unread = False
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refused(400, f"the text is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
                               "a spec is YAML text") from None

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        """Nothing per request (a live editor makes one per edit); _answer logs what fails."""


def _json(value) -> bytes:
    return json.dumps(value).encode("utf-8")


def editor_page(server: Server) -> str:
    """The editor: the YAML (escaped) in a textarea with line numbers, the report beside it."""
    scripts = [html.asset("report.js"), html.asset("editor.js")]
    policy = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
              "script-src " + " ".join(map(html.script_hash, scripts)))
    save = "" if server.path else " disabled title=\"started without a SPEC: nothing to save to\""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
            f'<meta name="archcalc-token" content="{escape.html(server.token)}">\n'
            f'<meta name="archcalc-base" content="{digest(server.text)}">\n'
            f'<title>{escape.html(server.name)} · archcalc serve</title>\n'
            f'<style>\n{html.asset("report.css")}{html.asset("editor.css")}</style>\n</head>\n'
            f'<body class="ac-editor-page">\n<header class="ac-bar">\n<strong>archcalc</strong>\n'
            f'<span class="ac-file">{escape.html(server.name)}</span>\n'
            f'<span id="ac-status" class="ac-status" role="status"></span>\n'
            f'<span id="ac-saving" class="ac-saving" role="status"></span>\n'
            f'<button id="ac-save" type="button"{save}>Save</button>\n</header>\n'
            f'<main class="ac-split">\n<section class="ac-edit">\n<div class="ac-code">\n'
            f'<pre class="ac-gutter" aria-hidden="true"></pre>\n<div class="ac-field">\n'
            f'<div class="ac-band" hidden></div><div class="ac-at" hidden></div>\n'
            f'<textarea id="ac-text" spellcheck="false" wrap="off" autocapitalize="off" autocomplete="off" '
            f'aria-label="the spec, in YAML">\n{escape.textarea(server.text)}</textarea>\n</div>\n</div>\n'
            f'<div id="ac-problem" class="ac-problem" role="alert" hidden></div>\n</section>\n'
            f'<section id="ac-view" class="ac-view"></section>\n</main>\n'
            + "".join(f"<script>{script}</script>\n" for script in scripts) + "</body>\n</html>\n")
