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

  function csrfToken() {
    var m = document.querySelector("meta[name=csrf-token]");
    return m ? m.getAttribute("content") : "";
  }

  function setText(id, v) {
    var e = document.getElementById(id);
    if (e) { e.textContent = v; }
  }

  function num(n) { return (n || 0).toLocaleString("zh-CN"); }

  // 批量导入: the job page polls GET /api/v1/jobs/{id} twice a second, then reloads to show the result
  function pollCaptureJob(box) {
    var url = box.getAttribute("data-status-url");
    var bar = document.getElementById("job-progress");
    function tick() {
      fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store", credentials: "same-origin" })
        .then(function (r) {
          if (r.status >= 400 && r.status < 500) { throw new Error("stop"); }
          return r.json();
        })
        .then(function (j) {
          if (bar) { bar.value = j.percent || 0; bar.textContent = (j.percent || 0) + "%"; }
          setText("job-processed", num(j.processed));
          setText("job-total", j.total ? num(j.total) : "—");
          setText("job-created", num(j.created));
          setText("job-existing", num(j.existing));
          setText("job-failed", num(j.failed));
          if (j.status_label) { setText("job-state", j.status_label); }
          if (j.finished) {
            window.location.replace(window.location.pathname);
          } else {
            window.setTimeout(tick, 500);
          }
        })
        .catch(function (e) { if (e && e.message !== "stop") { window.setTimeout(tick, 2000); } });
    }
    window.setTimeout(tick, 500);
  }

  // 检索: results as you type (after a pause), the results part fetched from the same page and swapped in
  function setupSearch(form) {
    var input = document.getElementById("search-q");
    if (!input) { return; }
    var timer = null, last = input.value, seq = 0;
    function run() {
      var q = input.value;
      if (q === last) { return; }
      last = q;
      var params = new URLSearchParams(new FormData(form));
      params.set("partial", "1");
      var mine = ++seq;
      fetch("/search?" + params.toString(), { headers: { "Accept": "text/html" }, credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          if (mine !== seq) { return; }
          var box = document.getElementById("search-results");
          if (box) { box.outerHTML = html; }
          params.delete("partial");
          window.history.replaceState(null, "", "/search?" + params.toString());
        })
        .catch(function () { /* the form still works without this */ });
    }
    input.addEventListener("input", function () { window.clearTimeout(timer); timer = window.setTimeout(run, 300); });
  }

  // 著录: ask the 保管期限表 for a suggestion when 题名, 文种 or 机构 change; the user decides ("采用")
  function setupSuggest(form) {
    var url = form.getAttribute("data-suggest-url");
    var box = document.getElementById("retention-suggest");
    var sel = document.getElementById("f-retention_period");
    if (!url || !box || !sel) { return; }
    var btn = document.getElementById("suggest-apply"), done = box.querySelector(".suggest-done");
    var current = null, last = "", timer = null;
    function val(id) { var e = document.getElementById(id); return e ? e.value.trim() : ""; }
    function refresh() {
      if (!current) { box.hidden = true; return; }
      var applied = sel.value === current.retention_period;
      btn.hidden = applied;
      done.hidden = !applied;
      box.hidden = false;
    }
    function show(s) {
      current = s || null;
      if (current) {
        var r = current.rule || {};
        box.querySelector(".suggest-text").textContent = "建议：" + current.label;
        box.querySelector(".suggest-basis").textContent = "（依据：" + (r.item || "") + (r.basis ? "，" + r.basis : "") +
          (current.matched && current.matched.length ? "；匹配：" + current.matched.join("、") : "") + "）";
      }
      refresh();
    }
    function ask() {
      var meta = {};
      [["title", "f-title"], ["doc_type", "f-doc_type"], ["class_code", "f-class_code"]].forEach(function (p) {
        var v = val(p[1]);
        if (v) { meta[p[0]] = v; }
      });
      if (!Object.keys(meta).length) { show(null); last = ""; return; }
      var body = JSON.stringify({ fonds: form.getAttribute("data-fonds"), category: form.getAttribute("data-category"),
                                  department: val("f-department") || null, metadata: meta });
      if (body === last) { return; }
      last = body;
      fetch(url, { method: "POST", credentials: "same-origin", body: body,
                   headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrfToken() } })
        .then(function (r) { return r.ok ? r.json() : { suggestion: null }; })
        .then(function (d) { if (body === last) { show(d.suggestion); } })
        .catch(function () { /* no suggestion: the user chooses as before */ });
    }
    function soon() { window.clearTimeout(timer); timer = window.setTimeout(ask, 350); }
    ["f-title", "f-doc_type", "f-class_code", "f-department"].forEach(function (id) {
      var e = document.getElementById(id);
      if (e) { e.addEventListener("input", soon); e.addEventListener("change", soon); }
    });
    sel.addEventListener("change", refresh);
    btn.addEventListener("click", function () {
      if (!current) { return; }
      var code = current.retention_period;
      if (!Array.prototype.some.call(sel.options, function (o) { return o.value === code; })) {
        var o = document.createElement("option");
        o.value = code;
        o.textContent = current.label + "（" + code + "）";
        sel.appendChild(o);
      }
      sel.value = code;
      refresh();
      sel.focus();
    });
    ask();
  }

  // 接收归档: select all, count the selection, Enter in the reason field means 退回
  function setupReview(form) {
    var all = document.getElementById("check-all");
    var boxes = form.querySelectorAll("input[type=checkbox][name=ids]");
    function count() {
      var n = Array.prototype.filter.call(boxes, function (b) { return b.checked; }).length;
      setText("selected-count", n ? "已选 " + n + " 件" : "");
      if (all) { all.checked = n > 0 && n === boxes.length; all.indeterminate = n > 0 && n < boxes.length; }
    }
    if (all) {
      all.addEventListener("change", function () {
        boxes.forEach(function (b) { b.checked = all.checked; });
        count();
      });
    }
    boxes.forEach(function (b) { b.addEventListener("change", count); });
    count();
  }

  // 保管期限表: 添加一条 copies the blank row with the next free number
  function setupSchedule() {
    var add = document.getElementById("add-rule"), body = document.getElementById("rule-rows");
    if (!add || !body) { return; }
    add.addEventListener("click", function () {
      var blanks = body.querySelectorAll("tr[data-blank-row]");
      var tpl = blanks[blanks.length - 1];
      if (!tpl) { return; }
      var next = 0;
      body.querySelectorAll("[name^=item_]").forEach(function (e) {
        next = Math.max(next, parseInt(e.name.slice(5), 10) + 1);
      });
      var row = tpl.cloneNode(true);
      row.querySelectorAll("[name]").forEach(function (e) {
        e.name = e.name.replace(/_\d+$/, "_" + next);
        if (e.tagName === "SELECT") { e.selectedIndex = 0; } else if (e.type !== "hidden") { e.value = ""; }
      });
      row.querySelectorAll(".field-error").forEach(function (e) { e.remove(); });
      body.appendChild(row);
      var first = row.querySelector("textarea");
      if (first) { first.focus(); }
    });
  }

  document.addEventListener("keydown", function (ev) {
    var el = ev.target;
    if (ev.key === "Enter" && el && el.getAttribute && el.getAttribute("data-enter-clicks")) {
      var b = document.getElementById(el.getAttribute("data-enter-clicks"));
      if (b) { ev.preventDefault(); b.click(); }
    }
  });

  document.addEventListener("change", function (ev) {
    var el = ev.target;
    var linkId = el && el.getAttribute && el.getAttribute("data-template-link");
    var link = linkId && document.getElementById(linkId);
    if (link) {
      var parts = el.value.split("/");
      link.setAttribute("href", "/import/template.xlsx?fonds=" + encodeURIComponent(parts[0]) +
        "&category=" + encodeURIComponent(parts[1] || ""));
    }
  });

  // 在线阅览: pages one under the other, loaded as they come into view (each page shown is audited);
  // previous/next, page n / N, zoom, keyboard arrows
  function setupViewer(box) {
    var pages = document.getElementById("vw-pages");
    var input = document.getElementById("vw-page");
    var total = parseInt(box.getAttribute("data-pages"), 10) || 1;
    var zoomOut = document.getElementById("vw-zoom-out"), zoomIn = document.getElementById("vw-zoom-in");
    var zoomText = document.getElementById("vw-zoom");
    var steps = [0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 2.5, 3];
    var zoom = 1, current = 1;
    function setZoom(z) {
      zoom = Math.max(0.3, Math.min(3, z));
      pages.style.setProperty("--vw-zoom", String(zoom));
      zoomText.textContent = Math.round(zoom * 100) + "%";
      zoomOut.disabled = zoom <= steps[0];
      zoomIn.disabled = zoom >= steps[steps.length - 1];
    }
    function stepZoom(dir) {
      var i, next = zoom;
      if (dir > 0) {
        for (i = 0; i < steps.length; i++) { if (steps[i] > zoom + 0.01) { next = steps[i]; break; } }
      } else {
        for (i = steps.length - 1; i >= 0; i--) { if (steps[i] < zoom - 0.01) { next = steps[i]; break; } }
      }
      var keep = current;
      setZoom(next);
      go(keep, true);
    }
    function show(n) {
      current = n;
      if (document.activeElement !== input) { input.value = String(n); }
      document.getElementById("vw-prev").disabled = n <= 1;
      document.getElementById("vw-next").disabled = n >= total;
    }
    function go(n, instant) {
      n = Math.max(1, Math.min(total, n));
      var fig = document.getElementById("page-" + n);
      // scroll the pages box only: the toolbar and the page around it stay where they are
      if (fig) { pages.scrollTo({ top: fig.offsetTop - 12, behavior: instant ? "auto" : "smooth" }); }
      show(n);
    }
    document.getElementById("vw-prev").addEventListener("click", function () { go(current - 1); });
    document.getElementById("vw-next").addEventListener("click", function () { go(current + 1); });
    zoomIn.addEventListener("click", function () { stepZoom(1); });
    zoomOut.addEventListener("click", function () { stepZoom(-1); });
    document.getElementById("vw-fit").addEventListener("click", function () {
      var keep = current;
      setZoom((pages.clientWidth - 32) / 860);
      go(keep, true);
    });
    input.addEventListener("change", function () { go(parseInt(input.value, 10) || 1); });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { ev.preventDefault(); go(parseInt(input.value, 10) || 1); input.blur(); }
    });
    document.addEventListener("keydown", function (ev) {
      var t = ev.target;
      if (ev.altKey || ev.ctrlKey || ev.metaKey || (t && t.tagName === "INPUT")) { return; }
      if (ev.key === "ArrowRight" || (ev.key === "ArrowDown" && ev.shiftKey)) { ev.preventDefault(); go(current + 1); }
      else if (ev.key === "ArrowLeft" || (ev.key === "ArrowUp" && ev.shiftKey)) { ev.preventDefault(); go(current - 1); }
      else if (ev.key === "+" || ev.key === "=") { ev.preventDefault(); stepZoom(1); }
      else if (ev.key === "-") { ev.preventDefault(); stepZoom(-1); }
      else if (ev.key === "Home" && ev.shiftKey) { ev.preventDefault(); go(1); }
      else if (ev.key === "End" && ev.shiftKey) { ev.preventDefault(); go(total); }
    });
    // the page indicator follows scrolling
    if ("IntersectionObserver" in window) {
      var seen = {};
      var io = new IntersectionObserver(function (entries) {
        entries.forEach(function (e) { seen[e.target.getAttribute("data-page")] = e.intersectionRatio; });
        var best = current, ratio = 0;
        Object.keys(seen).forEach(function (k) { if (seen[k] > ratio) { ratio = seen[k]; best = parseInt(k, 10); } });
        if (ratio > 0) { show(best); }
      }, { threshold: [0, 0.25, 0.5, 0.75, 1] });
      pages.querySelectorAll(".vw-page").forEach(function (f) { io.observe(f); });
    }
    // a page that cannot be rendered says why (the answer of the page address is JSON)
    pages.querySelectorAll(".vw-page img").forEach(function (img) {
      img.addEventListener("load", function () { img.parentNode.classList.add("loaded"); });
      img.addEventListener("error", function () {
        var fig = img.parentNode;
        fig.classList.add("failed");
        fetch(img.src, { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (j) {
          var msg = (j && j.error && j.error.message) || "该页无法显示";
          var p = document.createElement("p");
          p.className = "vw-error";
          p.textContent = msg;
          fig.insertBefore(p, fig.firstChild);
        }).catch(function () { /* the figure keeps its caption */ });
      });
    });
    setZoom(1);
    show(1);
    if (window.location.hash.indexOf("#page-") === 0) { go(parseInt(window.location.hash.slice(6), 10) || 1, true); }
  }

  // 申请利用: the approval route of the chosen 利用方式 is highlighted beside the form
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el && el.name === "kind" && el.type === "radio" && el.form && el.form.classList.contains("request-form")) {
      document.querySelectorAll("#route-table tr[data-kind]").forEach(function (tr) {
        tr.classList.toggle("current", tr.getAttribute("data-kind") === el.value);
      });
    }
  });

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
    var cj = document.getElementById("capture-job");
    if (cj && cj.getAttribute("data-state") === "running") {
      pollCaptureJob(cj);
    }
    var rf = document.querySelector("form[data-suggest-url]");
    if (rf) { setupSuggest(rf); }
    var sf = document.getElementById("search-form");
    if (sf) { setupSearch(sf); }
    var review = document.getElementById("review-form");
    if (review) { setupReview(review); }
    var vw = document.getElementById("viewer");
    if (vw) { setupViewer(vw); }
    setupSchedule();
    var errs = document.getElementById("form-errors");
    if (errs) {
      var first = document.querySelector(".has-error input, .has-error select, .has-error textarea");
      if (first) { first.focus({ preventScroll: true }); }
    }
  });

  // 数字化: the OCR line boxes over the page image (positions from the data, as shares of the image read by OCR),
  // a line of text and its box light up together
  function setupOcrBoxes(canvas) {
    var w = parseFloat(canvas.getAttribute("data-w")), h = parseFloat(canvas.getAttribute("data-h"));
    if (!w || !h) { return; }
    canvas.querySelectorAll(".ocr-box").forEach(function (b) {
      var v = (b.getAttribute("data-box") || "").split(",").map(parseFloat);
      if (v.length !== 4 || v.some(isNaN)) { return; }
      b.style.left = (v[0] / w * 100) + "%";
      b.style.top = (v[1] / h * 100) + "%";
      b.style.width = ((v[2] - v[0]) / w * 100) + "%";
      b.style.height = ((v[3] - v[1]) / h * 100) + "%";
    });
    function mark(n, on) {
      document.querySelectorAll('[data-line="' + n + '"]').forEach(function (e) { e.classList.toggle("hl", on); });
    }
    document.querySelectorAll("[data-line]").forEach(function (e) {
      var n = e.getAttribute("data-line");
      e.addEventListener("mouseenter", function () { mark(n, true); });
      e.addEventListener("mouseleave", function () { mark(n, false); });
      if (e.tagName === "LI") {
        e.addEventListener("click", function () {
          var box = canvas.querySelector('.ocr-box[data-line="' + n + '"]');
          if (box) { box.scrollIntoView({ block: "center", behavior: "smooth" }); }
        });
      }
    });
  }

  // 公文著录建议: correcting a value ticks its "采用" box (the person still confirms the form)
  function setupSuggestForm(form) {
    form.querySelectorAll("input[data-use]").forEach(function (input) {
      input.addEventListener("input", function () {
        var box = document.getElementById(input.getAttribute("data-use"));
        if (box && !box.disabled) { box.checked = true; }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var canvas = document.getElementById("scan-canvas");
    if (canvas) { setupOcrBoxes(canvas); }
    var sg = document.getElementById("suggest-form");
    if (sg) { setupSuggestForm(sg); }
  });
})();
