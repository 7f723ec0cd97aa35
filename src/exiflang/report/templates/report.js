(function () {
  // Sort the results table by a column: a button in each sortable heading, so the mouse and the keyboard
  // (Tab, then Enter or Space) both work. Delegated, so it also works for reports inserted later (exiflang serve).
  function cellValue(row, index, numeric) {
    var cell = row.children[index];
    if (!cell) { return numeric ? -Infinity : ""; }
    var v = cell.getAttribute("data-value");
    if (v === null) { v = cell.textContent.trim(); }
    if (numeric) { var f = parseFloat(v); return isNaN(f) ? -Infinity : f; }
    return v.toLowerCase();
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-sort") === "num";
    var descending = th.getAttribute("data-dir") !== "desc";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("data-dir", descending ? "desc" : "asc");
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      if (a.classList.contains("failed") !== b.classList.contains("failed")) {
        return a.classList.contains("failed") ? 1 : -1;
      }
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function close(figure) {
    figure.classList.remove("enlarged");
    figure.removeAttribute("role");
    figure.removeAttribute("aria-modal");
  }
  document.addEventListener("click", function (event) {
    var target = event.target;
    var th = target.closest ? target.closest("table.results th[data-sort]") : null;
    if (th) { sortBy(th); return; }
    // Click a picture to see it as large as the window; click again (or press Escape) to go back.
    var img = target.closest ? target.closest("figure img") : null;
    if (!img) { return; }
    var figure = img.closest("figure");
    if (figure.classList.contains("enlarged")) { close(figure); return; }
    Array.prototype.forEach.call(document.querySelectorAll("figure.enlarged"), close);
    figure.classList.add("enlarged");
    figure.setAttribute("role", "dialog");
    figure.setAttribute("aria-modal", "true");
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { Array.prototype.forEach.call(document.querySelectorAll("figure.enlarged"), close); }
  });
  // The heatmap's opacity over the original: the slider fades the original (on top) out as the heatmap comes in.
  document.addEventListener("input", function (event) {
    var slider = event.target;
    if (!slider.classList || !slider.classList.contains("opacity")) { return; }
    var top = slider.closest("figure").querySelector("img.top");
    if (top) { top.style.opacity = String(1 - slider.value / 100); }
  });
})();
