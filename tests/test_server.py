"""archcalc serve over plain HTTP: the page holds the spec exactly; /analyze answers with the
report and, for a broken spec, the error at its line and column (the course's AlexNet: stride 3
makes POOL2's (36-3)/2+1 = 17.5, line 16, column 34 of specs/alexnet.yaml); bad input (oversized,
not UTF-8, a YAML bomb, a line of 900 kB, a spec too slow to analyze, no token, a foreign Host) is
refused with one clear sentence and the server keeps serving; saves are atomic and, when several
race from the same state, exactly one is written."""
import base64
import hashlib
import http.client
import json
import re
import shutil
import threading
from html.parser import HTMLParser

import pytest
from conftest import SPECS

import archcalc
from archcalc.errors import ArchcalcError, SpecError
from archcalc.views import server as web

ALEXNET = (SPECS / "alexnet.yaml").read_text()
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot draws the diagrams (apt-get install graphviz; .ci/run installs it)")
STRIDE_3 = ALEXNET.replace("stride: 4", "stride: 3")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    spec = folder / "alexnet.yaml"
    spec.write_text(ALEXNET)
    server = web.Server(str(spec), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None,
            token: bool = True):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    sent = {"X-Archcalc-Token": server.token} if token else {}
    sent.update(headers or {})
    connection.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=sent)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, (json.loads(data) if kind == "application/json" else data.decode())


def analyze(server, text):
    return request(server, "POST", "/analyze", text)


def base_of(server) -> str:
    return hashlib.sha256(server.text.encode()).hexdigest()


class Textarea(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.inside, self.text, self.scripts, self.meta = False, "", [], {}
        self._script = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inside = tag == "textarea"
        if tag == "script":
            self._script = ""
        if tag == "meta":
            self.meta[attrs.get("name") or attrs.get("http-equiv")] = attrs.get("content")

    def handle_endtag(self, tag):
        self.inside = False
        if tag == "script":
            self.scripts.append(self._script)
            self._script = None

    def handle_data(self, data):
        if self.inside:
            self.text += data
        if self._script is not None:
            self._script += data


def test_the_page_holds_the_spec_exactly_and_only_its_own_scripts(served):
    status, page = request(served, "GET", "/", token=False)
    assert status == 200
    parsed = Textarea(page)
    assert parsed.text.removeprefix("\n") == ALEXNET  # the parser drops the newline after <textarea>
    policy = parsed.meta["Content-Security-Policy"]
    for script in parsed.scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "connect-src 'self'" in policy and parsed.meta["archcalc-token"] == served.token


def test_a_name_that_would_end_the_textarea_stays_in_it(tmp_path):
    spec = tmp_path / "x.yaml"
    text = "\n# </textarea><script>alert(1)</script> &amp;\ninput: [3, 8, 8]\nlayers:\n  - relu\n"
    spec.write_text(text)
    server = web.Server(str(spec), port=0, workers=1)
    try:
        from archcalc.views.server import editor_page
        parsed = Textarea(editor_page(server))
        assert parsed.text.removeprefix("\n") == text and len(parsed.scripts) == 2
    finally:
        server.server_close()


@needs_dot
def test_analyze_answers_the_report_then_the_diagram(served):
    status, answer = analyze(served, ALEXNET)
    assert status == 200 and answer["error"] is None
    assert re.search(r"<td>CONV1</td><td>conv relu</td><td>96x55x55</td><td class=\"ac-wrap\">\(227-11\+2\*0\)/4\+1 = 55"
                     r"</td><td class=\"ac-num\">34,944</td></tr>", answer["report"])  # the editor's columns
    status, svg = request(served, "GET", f"/diagram/{answer['diagram']}", token=False)
    assert status == 200 and svg.startswith("<svg")
    assert "<title>n0</title>" in svg and "34,944 params" in svg


def test_a_broken_spec_answers_its_line_column_and_fix(served):
    status, answer = analyze(served, STRIDE_3)
    assert status == 200
    assert (answer["error"]["line"], answer["error"]["column"]) == (16, 34)
    assert "alexnet.yaml:16:34: error: layer POOL2: invalid D-F-S combination along H: (36-3+2*0)/2+1 = 17.5" \
        in answer["error"]["text"]
    assert "hint: try padding: same (-> 18), stride 1 (-> 34)" in answer["error"]["text"]
    assert '<tr class="ac-invalid"' in answer["report"] and "<td>96x73x73</td>" in answer["report"]


@pytest.mark.parametrize("text, words", [
    ("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3\n  - relu\n", "expected ',' or '}'"),
    ("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernal: 3}\n", "did you mean 'kernel'?"),
])
def test_text_that_does_not_load_answers_where_as_the_command_line_does(served, text, words):
    status, answer = analyze(served, text)
    assert status == 200 and answer["report"] is None and answer["diagram"] is None
    with pytest.raises(SpecError) as raised:
        archcalc.loads(text, "alexnet.yaml")
    where = raised.value.location
    assert (answer["error"]["line"], answer["error"]["column"]) == (where.line, where.column)
    assert answer["error"]["text"] == str(raised.value) and words in answer["error"]["text"]


def test_an_oversized_body_is_refused_unread_and_the_server_goes_on(served):
    connection = http.client.HTTPConnection(*served.server_address[:2], timeout=30)
    connection.putrequest("POST", "/analyze")
    connection.putheader("X-Archcalc-Token", served.token)
    connection.putheader("Content-Length", str(web.MAX_BODY + 1))
    connection.endheaders()
    response = connection.getresponse()  # answered before any of the body is sent
    assert response.status == 413
    assert json.loads(response.read())["refused"] == "the text is 1,000,001 bytes; the editor's limit is 1,000,000"
    connection.close()
    assert analyze(served, ALEXNET)[0] == 200


@pytest.mark.parametrize("headers, status, words", [
    ({"Transfer-Encoding": "chunked"}, 411, "not chunked"),
    ({"X-Archcalc-Token": "guess"}, 403, "does not come from the editor's page"),
    ({"Host": "evil.example:8780"}, 403, "answers only requests addressed to it"),
])
def test_requests_not_from_the_page_are_refused(served, headers, status, words):
    got, answer = request(served, "POST", "/analyze", None if "Transfer-Encoding" in headers else ALEXNET, headers)
    assert got == status and words in answer["refused"]


def test_binary_is_refused_as_not_utf8_and_nul_bytes_are_a_yaml_error(served):
    status, answer = analyze(served, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert status == 400 and answer["refused"].startswith("the text is not UTF-8 (byte 0x89 at offset 0)")
    status, answer = analyze(served, "input: [3, 8, 8]\x00\x01")
    assert status == 200 and answer["error"]["line"] == 1 and "error:" in answer["error"]["text"]


def test_a_yaml_bomb_is_refused_quickly(served):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    status, answer = analyze(served, "\n".join(lines) + "\n")
    assert status == 200
    assert "expands to more than 2,000,000 YAML values" in answer["error"]["text"]


def test_a_line_of_900_kB_is_analyzed(served):
    status, answer = analyze(served, "input: [3, 8, 8]\nlayers:\n  - relu: {name: " + "x" * 900_000 + "}\n")
    assert status == 200 and answer["error"] is None and "x" * 1000 in answer["report"]


def test_an_analysis_past_its_time_is_stopped_and_the_server_goes_on(served):
    served.workers.timeout = 0.5
    try:
        slow = "input: [3, 8, 8]\nlayers:\n  - repeat:\n      times: 190000\n      layers:\n        - relu\n"
        status, answer = analyze(served, slow)
        assert status == 422 and answer["refused"].startswith("the analysis took longer than 0.5 s: stopped")
    finally:
        served.workers.timeout = web.ANALYSIS_SECONDS
    status, answer = analyze(served, ALEXNET)
    assert status == 200 and answer["error"] is None


def test_save_writes_the_file_and_refuses_a_stale_page(served):
    path = served.path
    status, answer = request(served, "POST", "/save", STRIDE_3, {"X-Archcalc-Base": base_of(served)})
    assert status == 200 and answer == {"saved": "alexnet.yaml", "base": hashlib.sha256(STRIDE_3.encode()).hexdigest()}
    assert open(path).read() == STRIDE_3
    status, answer = request(served, "POST", "/save", ALEXNET, {"X-Archcalc-Base": "0" * 64})
    assert status == 409 and "changed since this page loaded or saved it" in answer["refused"]
    assert open(path).read() == STRIDE_3
    assert request(served, "POST", "/save", ALEXNET, {"X-Archcalc-Base": answer and base_of(served)})[0] == 200


def test_concurrent_saves_from_one_state_write_exactly_one_whole_text(served):
    base = base_of(served)
    texts = [ALEXNET.replace("name: AlexNet", f"name: AlexNet{i}") + "#" * (i * 20_000) for i in range(8)]
    results = [None] * len(texts)

    def save(i):
        results[i] = request(served, "POST", "/save", texts[i], {"X-Archcalc-Base": base})

    threads = [threading.Thread(target=save, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = [i for i, (status, _) in enumerate(results) if status == 200]
    assert len(written) == 1
    assert all(status == 409 for i, (status, _) in enumerate(results) if i not in written)
    with open(served.path) as handle:
        assert handle.read() == texts[written[0]]
    assert sorted(p.name for p in __import__("pathlib").Path(served.path).parent.iterdir()) == ["alexnet.yaml"]


def test_without_a_spec_nothing_can_be_saved(tmp_path):
    server = web.Server(None, port=0, workers=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, answer = request(server, "POST", "/save", "x: 1\n", {"X-Archcalc-Base": base_of(server)})
        assert status == 409 and "started without a SPEC" in answer["refused"]
        assert analyze(server, server.text)[1]["error"] is None  # the example it starts from is a valid spec
    finally:
        server.shutdown()
        server.server_close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, words", [
    (lambda folder: folder / "missing.yaml", "no such file"),
    (lambda folder: folder, "it is a directory"),
])
def test_a_spec_that_cannot_be_edited_is_refused_before_serving(tmp_path, make, words):
    with pytest.raises(ArchcalcError, match=words):
        web.Server(str(make(tmp_path)), port=0)


def test_a_busy_port_is_one_clear_error(served):
    with pytest.raises(ArchcalcError, match=r"(?s)cannot listen on 127\.0\.0\.1:\d+: .*hint: choose another --port"):
        web.Server(None, port=served.server_address[1])



def test_the_command_serves_until_interrupted(tmp_path):
    import signal
    import subprocess
    import sys

    spec = tmp_path / "alexnet.yaml"
    spec.write_text(ALEXNET)
    command = subprocess.Popen([sys.executable, "-m", "archcalc", "serve", str(spec), "--port", "0"],
                               stderr=subprocess.PIPE, text=True)
    try:
        line = command.stderr.readline()
        assert line.startswith(f"serving {spec} at http://localhost:") and line.endswith(" (Ctrl+C stops)\n")
        port = int(line.split("localhost:")[1].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("X-Frame-Options") == "DENY"
        assert ALEXNET.split("\n")[0] in response.read().decode()
    finally:
        command.send_signal(signal.SIGINT)
        rest = command.communicate(timeout=30)[1]
    assert command.returncode == 0 and "Traceback" not in rest


@pytest.mark.parametrize("args, words", [
    (["no_such.yaml"], "error: no such file: no_such.yaml"),
    (["--port", "70000"], "--port: 70000 is not in the range 0<=x<=65535"),
])
def test_the_command_refuses_what_it_cannot_serve(args, words):
    from click.testing import CliRunner

    from archcalc.cli import main

    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2 and words in result.output, result.output


def test_an_include_is_not_followed(served, tmp_path):
    status, answer = analyze(served, "input: [3, 8, 8]\ninclude: /etc/passwd\nlayers:\n  - relu\n")
    assert status == 200 and answer["report"] is None
    assert (answer["error"]["line"], answer["error"]["column"]) == (2, 1)
    assert "include: is not read here: archcalc serve reads no file but the spec it edits" in answer["error"]["text"]


@needs_dot
def test_a_drawing_past_its_time_is_stopped_and_the_server_goes_on(served, monkeypatch):
    monkeypatch.setattr(web, "DIAGRAM_SECONDS", 0.001)  # no layout finishes that fast
    status, answer = analyze(served, ALEXNET.replace("name: AlexNet", "name: AlexNet drawn slowly"))
    status, refused = request(served, "GET", f"/diagram/{answer['diagram']}", token=False)
    assert status == 422 and refused["refused"].startswith("Graphviz took longer than 0.001 s to draw SVG: stopped")
    monkeypatch.setattr(web, "DIAGRAM_SECONDS", 10.0)
    status, svg = request(served, "GET", f"/diagram/{answer['diagram']}", token=False)
    assert status == 200 and "AlexNet drawn slowly" in svg
