"""The inline stylesheet and script of the HTML report (no external resources)."""

from __future__ import annotations

CSS = """
:root { --bad: #d7301f; --probe: #1f78b4; --ink: #1b1b1f; --muted: #6b6b76; --line: #e3e3ea; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0; background: #f6f6f9; }
header.top { padding: 16px 24px; background: #fff; border-bottom: 1px solid var(--line); }
header.top h1 { margin: 0 0 4px; font-size: 20px; }
header.top .meta { color: var(--muted); }
main { padding: 16px 24px; max-width: 1400px; margin: 0 auto; }
table.summary { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 24px; }
table.summary th, table.summary td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; }
table.summary th { cursor: pointer; user-select: none; background: #fafafc; position: sticky; top: 0; }
table.summary th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.summary th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.controls { margin: 0 0 12px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
.badge { display: inline-block; min-width: 3.2em; padding: 2px 8px; border-radius: 12px; color: #fff;
         font-weight: 600; text-align: center; }
.badge.none { background: #888; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px;
               margin-bottom: 24px; }
section.card h2 { margin: 0 0 8px; font-size: 16px; display: flex; gap: 12px; align-items: center;
                  word-break: break-all; }
.card-body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(260px, 2fr); gap: 16px; }
@media (max-width: 900px) { .card-body { grid-template-columns: 1fr; } }
.stage { position: relative; display: inline-block; max-width: 100%; line-height: 0; background: #222; }
.stage img.view { max-width: 100%; height: auto; display: block; }
.box { position: absolute; border: 2px solid var(--bad); box-shadow: 0 0 0 1px rgba(255,255,255,.7);
       pointer-events: none; }
.box.probe { border: 2px dashed var(--probe); }
.box .label { position: absolute; left: -2px; top: -20px; line-height: 16px; font-size: 11px; padding: 1px 4px;
              color: #fff; background: var(--bad); white-space: nowrap; }
.box.probe .label { background: var(--probe); top: auto; bottom: -20px; }
.hide-defects .box.defect, .hide-probes .box.probe { display: none; }
.crops { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
figure.crop { margin: 0; background: #fafafc; border: 1px solid var(--line); padding: 6px; }
figure.crop .stage { background: none; }
figure.crop img { display: block; max-width: 100%; height: auto; }
figure.crop.defect { border-color: var(--bad); }
figure.crop.probe { border-color: var(--probe); }
figure.crop figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; max-width: 384px; }
.error { color: var(--bad); font-weight: 600; }
.missing { padding: 24px; background: #eee; color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 8px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
table.defects { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
table.defects td, table.defects th { border-bottom: 1px solid var(--line); padding: 2px 8px; text-align: left; }
ol.trajectory { padding-left: 20px; font-size: 13px; }
ol.trajectory .kind { font-weight: 600; }
ol.trajectory pre { white-space: pre-wrap; word-break: break-word; margin: 2px 0 6px; background: #f3f3f6;
                    padding: 4px 6px; max-height: 12em; overflow: auto; }
.note { color: var(--muted); font-size: 13px; }
"""

JS = r"""
(function () {
  "use strict";
  var table = document.querySelector("table.summary");
  var cards = document.getElementById("cards");
  function key(row, col) {
    var cell = row.children[col];
    var v = cell ? cell.getAttribute("data-sort") : null;
    if (v === null || v === "") return null;
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortBy(col, dir) {
    if (!table) return;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      if (x === null && y === null) return Number(a.dataset.index) - Number(b.dataset.index);
      if (x === null) return 1;   // missing values (failed images) always last
      if (y === null) return -1;
      if (x < y) return dir === "ascending" ? -1 : 1;
      if (x > y) return dir === "ascending" ? 1 : -1;
      return Number(a.dataset.index) - Number(b.dataset.index);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      if (i === col) th.setAttribute("aria-sort", dir); else th.removeAttribute("aria-sort");
    });
    if (cards) {
      rows.forEach(function (r) {
        var card = document.getElementById("card-" + r.dataset.index);
        if (card) cards.appendChild(card);
      });
    }
  }
  if (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        sortBy(i, dir);
      });
    });
    var filter = document.getElementById("filter");
    if (filter) {
      filter.addEventListener("input", function () {
        var q = filter.value.toLowerCase();
        Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
          var show = r.textContent.toLowerCase().indexOf(q) >= 0;
          r.style.display = show ? "" : "none";
          var card = document.getElementById("card-" + r.dataset.index);
          if (card) card.style.display = show ? "" : "none";
        });
      });
    }
  }
  function toggle(id, cls) {
    var box = document.getElementById(id);
    if (!box) return;
    box.addEventListener("change", function () { document.body.classList.toggle(cls, !box.checked); });
  }
  toggle("show-defects", "hide-defects");
  toggle("show-probes", "hide-probes");
  window.qprobeSort = sortBy;
})();
"""
