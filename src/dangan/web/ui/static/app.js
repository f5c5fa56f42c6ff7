/* dangan web UI: small progressive enhancements; every page also works without JavaScript. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el && el.matches && el.matches(".file-pick input[type=file]")) {
      var out = el.parentNode.querySelector(".file-chosen");
      if (out) {
        var names = Array.prototype.map.call(el.files || [], function (f) { return f.name; });
        out.textContent = names.length ? names.join("、") : out.getAttribute("data-empty");
        out.classList.toggle("has-file", names.length > 0);
      }
      return;
    }
    if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
      el.form.submit();
    }
  });

  document.addEventListener("click", function (ev) {
    var el = ev.target && ev.target.closest ? ev.target.closest("button") : null;
    if (!el) { return; }
    if (el.classList.contains("demo-fill")) {
      // login page of a demo archive: fill in a demo account
      var u = document.getElementById("username"), p = document.getElementById("password");
      if (u && p) { u.value = el.getAttribute("data-username"); p.value = el.getAttribute("data-password"); p.focus(); }
      return;
    }
    if (el.classList.contains("copy-btn")) {
      var src = document.getElementById(el.getAttribute("data-copy"));
      if (!src) { return; }
      var done = el.parentNode.querySelector(".copy-done");
      var show = function () { if (done) { done.hidden = false; } };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(src.textContent.trim()).then(show, function () { selectText(src); });
      } else {
        selectText(src);
        try { if (document.execCommand("copy")) { show(); } } catch (e) { /* selected: the user copies by hand */ }
      }
    }
  });

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter || (ev.target && ev.target.querySelector("[data-confirm]"));
    var msg = btn && btn.getAttribute && btn.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
      return;
    }
    var form = ev.target;
    if (form && form.querySelectorAll) {
      // a second click must not send the form twice
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      }, 0);
    }
  });

  function fmtBytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? n + " B" : n.toFixed(1) + " " + units[i];
  }

  function pollJob(box) {
    var url = box.getAttribute("data-status-url");
    var bar = document.getElementById("job-progress");
    function tick() {
      fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (bar) { bar.value = s.percent || 0; bar.textContent = (s.percent || 0) + "%"; }
          var set = function (id, v) { var e = document.getElementById(id); if (e) { e.textContent = v; } };
          set("job-checked", (s.checked || 0).toLocaleString("zh-CN"));
          set("job-total", (s.total || 0).toLocaleString("zh-CN"));
          set("job-bytes", fmtBytes(s.bytes_read || 0));
          if (s.state_label) { set("job-state", s.state_label); }
          if (s.state === "running") {
            window.setTimeout(tick, 700);
          } else {
            window.location.replace("/fixity");
          }
        })
        .catch(function () { window.setTimeout(tick, 2000); });
    }
    tick();
  }

  function openTarget() {
    var id = window.location.hash.slice(1);
    var el = id && document.getElementById(id);
    if (el && el.tagName === "DETAILS") { el.open = true; }
  }
  window.addEventListener("hashchange", openTarget);

  document.addEventListener("DOMContentLoaded", function () {
    openTarget();
    var box = document.getElementById("job");
    if (box && box.getAttribute("data-state") === "running") {
      pollJob(box);
    }
    var errs = document.getElementById("form-errors");
    if (errs) {
      var first = document.querySelector(".has-error input, .has-error select, .has-error textarea");
      if (first) { first.focus({ preventScroll: true }); }
    }
  });
})();
