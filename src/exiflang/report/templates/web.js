(function () {
  var form = document.getElementById("upload-form"), input = document.getElementById("files");
  var button = document.getElementById("analyse"), bar = document.getElementById("progress");
  var statusEl = document.getElementById("status"), report = document.getElementById("report");
  var LIMIT = {{ max_bytes }}, MAX_N = {{ max_files }};
  function show(text, isError) {
    statusEl.textContent = text;
    statusEl.className = isError ? "status error" : "status";
    document.body.setAttribute("data-state", isError ? "error" : "busy");
  }
  function mb(n) { return (n / 1e6).toFixed(1) + " MB"; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var files = input.files, total = 0, i;
    if (!files || !files.length) { show("Choose one or more images first.", true); return; }
    if (files.length > MAX_N) { show("At most " + MAX_N + " images per upload; you chose " + files.length + ".", true); return; }
    for (i = 0; i < files.length; i++) { total += files[i].size; }
    if (total > LIMIT) { show("The upload is " + mb(total) + ", over the limit of " + mb(LIMIT) + ".", true); return; }
    var data = new FormData();
    for (i = 0; i < files.length; i++) { data.append("files", files[i], files[i].name); }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded; show("Uploading: " + Math.round(100 * e.loaded / e.total) + " %"); }
    };
    xhr.onload = function () {
      var answer;
      try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = {detail: xhr.responseText}; }
      if (xhr.status !== 202) { show(answer.detail || ("The upload failed (HTTP " + xhr.status + ")."), true); button.disabled = false; return; }
      bar.max = answer.total; bar.value = 0;
      poll(answer.job);
    };
    xhr.onerror = function () { show("The upload failed: is the server still running?", true); button.disabled = false; };
    button.disabled = true;
    report.innerHTML = "";
    show("Uploading…");
    xhr.send(data);
  });
  function poll(id) {
    fetch("/api/jobs/" + id).then(function (r) { return r.json(); }).then(function (job) {
      bar.max = Math.max(job.total, 1); bar.value = job.done + Math.min(job.fraction || 0, 0.99);
      if (job.state === "failed") { show(job.error || "The analysis failed.", true); button.disabled = false; return; }
      if (job.state === "done") {
        fetch("/api/jobs/" + id + "/report").then(function (r) { return r.text(); }).then(function (text) {
          report.innerHTML = text;
          var bad = job.results.filter(function (r) { return !r.ok; }).length;
          statusEl.textContent = "Done: " + (job.total - bad) + " analysed" + (bad ? ", " + bad + " failed" : "") + ".";
          statusEl.className = "status";
          document.body.setAttribute("data-state", "done");
          button.disabled = false;
        });
        return;
      }
      if (job.state === "queued") { show("Waiting for the analysis to start…"); }
      else if (job.stage === "report") { show("Writing the report (EXIF check)…"); }
      else {
        var left = job.eta_s == null ? "" : " (about " + (job.eta_s < 90 ? Math.round(job.eta_s) + " s" : Math.round(job.eta_s / 60) + " min") + " left)";
        show("Analysing " + Math.min(job.done + 1, job.total) + " of " + job.total + (job.current ? ": " + job.current : "") + "…" + left);
      }
      setTimeout(function () { poll(id); }, 400);
    }).catch(function () { show("Lost contact with the server.", true); button.disabled = false; });
  }
})();
