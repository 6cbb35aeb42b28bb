// archcalc's HTML report (views/html.py): point at a layer (its box in the diagram or its row in
// the table) to see its arithmetic on the board and both highlighted; click to keep it.
// Rows and boards carry their layer's box id; Graphviz writes it as the <title> of the box's
// <g class="node">, which prepare() moves into data-box (the title would show as a tooltip).
// Listeners sit on the document, so `archcalc serve` can replace the report under them.
(function () {
  "use strict";
  var pinned = null;

  function prepare(root) {
    root.querySelectorAll(".ac-diagram g.node").forEach(function (g) {
      var title = g.querySelector(":scope > title");
      if (title) {
        g.setAttribute("data-box", title.textContent);
        title.remove();
      }
    });
  }

  function boxOf(target) {
    if (!(target instanceof Element)) return null;
    var owner = target.closest(".ac-diagram g.node[data-box], .ac-layers tr[data-boxes]");
    if (!owner) return null;
    return owner.getAttribute("data-box") || owner.getAttribute("data-boxes").split(" ")[0];
  }

  function show(box) {
    var report = document.querySelector(".ac-report");
    if (!report) return;
    report.querySelectorAll(".ac-hot").forEach(function (e) { e.classList.remove("ac-hot"); });
    var board = report.querySelector(".ac-board");
    var text = box && report.querySelector('.ac-boards pre[data-box="' + box + '"]');
    board.classList.toggle("ac-pinned", Boolean(text) && pinned === box);
    if (!text) return;  // a fresh report's board holds its hint
    board.replaceChildren();
    text.textContent.split("\n").forEach(function (line, i) {
      var span = document.createElement("span");
      if (/^ {2}(error|hint):/.test(line)) span.className = "ac-bad";
      span.textContent = (i ? "\n" : "") + line;
      board.appendChild(span);
    });
    report.querySelectorAll('.ac-layers tr[data-boxes~="' + box + '"]').forEach(function (row) {
      row.classList.add("ac-hot");
    });
    var node = report.querySelector('.ac-diagram g.node[data-box="' + box + '"]');
    if (node) node.classList.add("ac-hot");
  }

  document.addEventListener("mouseover", function (event) {
    if (pinned) return;
    var box = boxOf(event.target);
    if (box) show(box);
  });
  document.addEventListener("click", function (event) {
    var box = boxOf(event.target);
    if (!box) return;
    pinned = pinned === box ? null : box;
    show(box);
  });
  document.addEventListener("focusin", function (event) {
    var box = boxOf(event.target);
    if (box && !pinned) show(box);
  });

  // for the editor page: after a new report is put in, prepare it and show the pinned layer again
  window.archcalcReport = {
    refresh: function () {
      prepare(document);
      var report = document.querySelector(".ac-report");
      if (pinned && !(report && report.querySelector('.ac-boards pre[data-box="' + pinned + '"]'))) pinned = null;
      show(pinned);
    }
  };
  prepare(document);
})();
