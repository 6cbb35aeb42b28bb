// `archcalc serve`'s editor (views/server.py): the YAML on the left, its report on the right.
// Each edit, once typing pauses for DEBOUNCE ms, is POSTed to /analyze; the answer's report
// replaces the right pane at once, its diagram follows from /diagram/KEY. A spec that fails is
// marked at its line and column (a band across the line, a mark at the column, the line number
// in red) and its error, with the hint, is shown under the editor. Save writes the file (Ctrl+S).
(function () {
  "use strict";
  var DEBOUNCE = 150;
  var text = document.getElementById("ac-text");
  var gutter = document.querySelector(".ac-gutter");
  var band = document.querySelector(".ac-band");
  var at = document.querySelector(".ac-at");
  var problem = document.getElementById("ac-problem");
  var view = document.getElementById("ac-view");
  var status = document.getElementById("ac-status");
  var save = document.getElementById("ac-save");
  var saving = document.getElementById("ac-saving");
  var token = document.querySelector('meta[name="archcalc-token"]').content;
  var base = document.querySelector('meta[name="archcalc-base"]').content;
  var saved = text.value;
  var timer = null;
  var sequence = 0;      // the latest edit sent; older answers are dropped
  var inFlight = null;   // its AbortController
  var diagrams = {};     // key -> SVG text, the drawings already fetched
  var errorAt = null;    // {line, column} of the current error

  function post(path, body, headers, signal) {
    var all = {"Content-Type": "text/plain; charset=utf-8", "X-Archcalc-Token": token};
    Object.keys(headers).forEach(function (k) { all[k] = headers[k]; });
    return fetch(path, {method: "POST", body: body, headers: all, signal: signal});
  }

  function lines() {
    var count = text.value.split("\n").length;
    if (gutter.childElementCount !== count) {
      var numbers = document.createDocumentFragment();
      for (var i = 1; i <= count; i++) {
        var number = document.createElement("span");
        number.textContent = i + "\n";
        numbers.appendChild(number);
      }
      gutter.replaceChildren(numbers);
    }
    mark();
  }

  function metrics() {
    var style = getComputedStyle(text);
    var probe = document.createElement("span");
    probe.textContent = "0000000000";
    probe.style.cssText = "position:absolute;visibility:hidden;white-space:pre;font:" + style.font;
    document.body.appendChild(probe);
    var width = probe.getBoundingClientRect().width / 10;
    probe.remove();
    return {line: parseFloat(style.lineHeight), char: width,
            top: parseFloat(style.paddingTop), left: parseFloat(style.paddingLeft)};
  }

  function mark() {
    gutter.querySelectorAll(".ac-err").forEach(function (n) { n.classList.remove("ac-err"); });
    if (!errorAt || !errorAt.line) { band.hidden = true; at.hidden = true; return; }
    var m = metrics();
    var number = gutter.children[errorAt.line - 1];
    if (number) number.classList.add("ac-err");
    band.hidden = false;
    band.style.top = (m.top + (errorAt.line - 1) * m.line - text.scrollTop) + "px";
    band.style.height = m.line + "px";
    at.hidden = !errorAt.column;
    at.style.top = band.style.top;
    at.style.height = m.line + "px";
    at.style.left = (m.left + (errorAt.column - 1) * m.char - text.scrollLeft) + "px";
    at.style.width = Math.max(m.char, 2) + "px";
  }

  function show(answer) {
    errorAt = answer.error && answer.error.line ? answer.error : null;
    if (answer.error) {
      problem.textContent = answer.error.text;  // 'name.yaml:16:34: error: ...' and its hint
      problem.hidden = false;
      status.textContent = "error" + (answer.error.line ? " at line " + answer.error.line : "");
    } else {
      problem.hidden = true;
      problem.textContent = "";
      status.textContent = "analyzed in " + answer.ms + " ms" + (answer.warnings.length ? " (warnings below)" : "");
      if (answer.warnings.length) {
        problem.textContent = answer.warnings.join("\n");
        problem.hidden = false;
      }
    }
    problem.classList.toggle("ac-warning", !answer.error);
    if (answer.report === null) {  // the text does not load: the last report stays, dimmed
      view.classList.add("ac-stale");
    } else {
      var old = view.querySelector(".ac-diagram svg");
      view.innerHTML = answer.report;  // the server's fragment: every name escaped there
      view.classList.remove("ac-stale");
      var figure = view.querySelector(".ac-diagram");
      if (diagrams[answer.diagram]) {
        figure.innerHTML = diagrams[answer.diagram];
      } else if (answer.diagram) {
        if (old) { figure.appendChild(old); figure.classList.add("ac-stale"); }
        draw(answer.diagram, sequence);
      }
      window.archcalcReport.refresh();
    }
    mark();
  }

  function draw(key, asked) {
    fetch("/diagram/" + key).then(function (response) {
      return response.text().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (drawn) {
      if (drawn.ok) diagrams[key] = drawn.body;
      if (asked !== sequence) return;  // a newer edit has its own drawing
      var figure = view.querySelector(".ac-diagram");
      figure.classList.remove("ac-stale");
      if (drawn.ok) {
        figure.innerHTML = drawn.body;
      } else {
        var note = document.createElement("p");
        note.className = "ac-nodiagram";
        note.textContent = "No diagram: " + JSON.parse(drawn.body).refused;
        figure.replaceChildren(note);
      }
      window.archcalcReport.refresh();
    }).catch(function () {});
  }

  function analyze() {
    var mine = ++sequence;
    if (inFlight) inFlight.abort();
    inFlight = new AbortController();
    status.textContent = "analyzing…";
    post("/analyze", text.value, {}, inFlight.signal).then(function (response) {
      return response.json().then(function (answer) { return {ok: response.ok, answer: answer}; });
    }).then(function (result) {
      if (mine !== sequence) return;
      if (!result.ok) {
        status.textContent = "not analyzed";
        problem.textContent = result.answer.refused;
        problem.hidden = false;
        problem.classList.remove("ac-warning");
        view.classList.add("ac-stale");
        return;
      }
      show(result.answer);
    }).catch(function (error) {
      if (error.name !== "AbortError" && mine === sequence) status.textContent = "the server does not answer";
    });
  }

  function edited() {
    saving.textContent = "";
    lines();
    document.body.classList.toggle("ac-dirty", text.value !== saved);
    clearTimeout(timer);
    timer = setTimeout(analyze, DEBOUNCE);
  }

  function write() {
    if (save.disabled) return;
    var sent = text.value;
    saving.textContent = "saving…";
    post("/save", sent, {"X-Archcalc-Base": base}).then(function (response) {
      return response.json().then(function (answer) { return {ok: response.ok, answer: answer}; });
    }).then(function (result) {
      if (!result.ok) { saving.textContent = result.answer.refused; return; }
      base = result.answer.base;
      saved = sent;
      document.body.classList.toggle("ac-dirty", text.value !== saved);
      saving.textContent = "saved " + result.answer.saved;
    }).catch(function () { saving.textContent = "not saved: the server does not answer"; });
  }

  text.addEventListener("input", edited);
  text.addEventListener("scroll", function () {
    gutter.scrollTop = text.scrollTop;
    mark();
  });
  text.addEventListener("keydown", function (event) {
    if (event.key === "Tab" && !event.shiftKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();  // YAML indents with spaces, never tabs
      document.execCommand("insertText", false, "  ");
    }
  });
  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); write(); }
  });
  save.addEventListener("click", write);
  problem.addEventListener("click", function () {
    if (!errorAt) return;
    var offset = text.value.split("\n").slice(0, errorAt.line - 1).join("\n").length + (errorAt.line > 1 ? 1 : 0);
    offset += (errorAt.column || 1) - 1;
    text.focus();
    text.setSelectionRange(offset, offset);
  });
  window.addEventListener("resize", mark);
  lines();
  analyze();
})();
