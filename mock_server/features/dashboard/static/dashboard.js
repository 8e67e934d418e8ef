/* fal-mock dashboard: live rows over server-sent events, and the control API's actions.
   Plain script, no dependencies; the page works without it (the list is server-rendered). */
(function () {
  "use strict";
  var root = document.documentElement;
  root.classList.remove("nojs");
  root.classList.add("js");

  var view = document.body.getAttribute("data-view");
  var tbody = document.getElementById("rows");
  var live = document.getElementById("live");
  var flashEl = document.getElementById("flash");
  var flashTimer = null;

  function flash(text, bad) {
    flashEl.textContent = text;
    flashEl.className = bad ? "flash bad" : "flash";
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { flashEl.textContent = ""; }, 6000);
  }

  function call(url, body, method) {
    return fetch(url, {
      method: method || "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? "{}" : JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = JSON.parse(text); } catch (err) { data = null; }
        if (!r.ok) {
          var why = data && (data.detail || data.status) ? (data.detail || data.status) : "HTTP " + r.status;
          throw new Error(typeof why === "string" ? why : JSON.stringify(why));
        }
        return data;
      });
    });
  }

  // Reset and Fail next act on the page's namespace; on the unfiltered page, on every namespace,
  // said explicitly (?namespace=*) and shown in the label beside the buttons (docs/namespaces.md)
  var actionsEl = document.querySelector(".actions[data-namespace]");
  var scope = actionsEl ? actionsEl.getAttribute("data-namespace") : "*";
  var every = scope === "*";
  function scoped(path) { return path + "?namespace=" + encodeURIComponent(scope); }

  function setClock(c) {
    if (!c) return;
    var el = document.getElementById("clock");
    if (el) el.textContent = c.text;
    var f = document.getElementById("faults");
    if (f && typeof c.faults === "number") f.textContent = String(c.faults);
  }

  var actions = {
    reset: function () {
      return call(scoped("/_mock/reset")).then(function () {
        flash(every ? "All namespaces reset." : "Namespace " + scope + " reset.");
        resync(); // a namespace's reset sends no event: show what is left now
      });
    },
    fail: function () {
      var rule = JSON.parse(document.getElementById("fail-kind").value);
      rule.on = document.getElementById("fail-on").value;
      rule.times = 1;
      return call(scoped("/_mock/faults"), rule).then(function (r) {
        flash("The next " + rule.on + " call fails (" + (every ? "any namespace" : "namespace " + scope) + "): "
          + (r && r.fault ? (r.fault.kind || "") : rule.kind) + ".");
        var f = document.getElementById("faults");
        if (f) f.textContent = String((parseInt(f.textContent, 10) || 0) + 1);
      });
    },
    advance: function () {
      var n = parseFloat(document.getElementById("advance-by").value);
      if (!(n >= 0)) return Promise.reject(new Error("seconds must be a number >= 0"));
      return call("/_mock/clock", { advance: n }).then(function () { flash("Clock advanced " + n + " s."); });
    },
    freeze: function () {
      return call("/_mock/clock", { freeze: true }).then(function () { flash("Clock frozen."); });
    },
    unfreeze: function () {
      return call("/_mock/clock", { unfreeze: true }).then(function () { flash("Clock running."); });
    },
    cancel: function (button) {
      var id = button.getAttribute("data-id");
      return call("/_mock/ui/requests/" + encodeURIComponent(id) + "/cancel").then(function (r) {
        flash("Cancel " + id + ": " + (r && r.status));
      });
    }
  };

  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("[data-action]") : null;
    if (!button) return;
    var act = actions[button.getAttribute("data-action")];
    if (!act) return;
    ev.preventDefault();
    button.disabled = true;
    Promise.resolve().then(function () { return act(button); })
      .catch(function (err) { flash(String(err.message || err), true); })
      .then(function () { button.disabled = false; });
  });

  // filters apply at once (the form still works without JS)
  var form = document.querySelector("form.filters");
  if (form) form.addEventListener("change", function () { form.submit(); });

  // -- live rows -------------------------------------------------------------------------
  var filt = tbody && view === "list" ? {
    status: tbody.getAttribute("data-status") || "",
    endpoint: tbody.getAttribute("data-endpoint") || "",
    namespace: every ? "" : scope,  // docs/namespaces.md
    page: parseInt(tbody.getAttribute("data-page"), 10) || 1,
    size: parseInt(tbody.getAttribute("data-size"), 10) || 50
  } : null;

  function fragment(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    return tpl.content.firstElementChild;
  }

  function rowsOnPage() { return tbody.querySelectorAll(".row"); }

  function applyRow(d) {
    var old = document.getElementById("r-" + d.key);
    if (view === "detail") {
      if (d.key === document.body.getAttribute("data-key")) refreshDetail();
      return;
    }
    var fits = (!filt.status || filt.status === d.status) && (!filt.endpoint || filt.endpoint === d.endpoint)
      && (!filt.namespace || filt.namespace === d.namespace);
    if (!fits) { if (old) old.remove(); return; }
    var row = fragment(d.html);
    if (old) { old.replaceWith(row); return; }
    var rows = rowsOnPage();
    var before = null;
    for (var i = 0; i < rows.length; i++) {
      if ((parseInt(rows[i].getAttribute("data-order"), 10) || 0) < d.order) { before = rows[i]; break; }
    }
    if (filt.page !== 1 && (before === rows[0] || rows.length === 0)) {
      var note = document.getElementById("newer");
      if (note) note.hidden = false;
      return;
    }
    if (!before && rows.length >= filt.size) return; // older than a full page
    var empty = document.getElementById("empty");
    if (empty) empty.remove();
    tbody.insertBefore(row, before);
    rows = rowsOnPage();
    for (var j = rows.length - 1; j >= filt.size; j--) rows[j].remove();
  }

  var refreshing = null;
  function refreshDetail() {
    if (refreshing) { refreshing.again = true; return; }
    refreshing = { again: false };
    fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (text) {
      var doc = new DOMParser().parseFromString(text, "text/html");
      var fresh = doc.getElementById("detail");
      var here = document.getElementById("detail");
      if (fresh && here) here.replaceWith(document.importNode(fresh, true));
    }).catch(function () {}).then(function () {
      var again = refreshing.again;
      refreshing = null;
      if (again) refreshDetail();
    });
  }

  function resync() {
    if (view === "detail") { refreshDetail(); return; }
    fetch("/_mock/ui/rows" + location.search, { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { tbody.innerHTML = html; })
      .catch(function () {});
  }

  if (!window.EventSource) return;
  var source = new EventSource("/_mock/ui/events");
  var lost = false;
  function setLive(text, cls) { if (live) { live.textContent = text; live.className = "live " + cls; } }
  source.addEventListener("hello", function (ev) {
    setLive("live", "on");
    setClock(JSON.parse(ev.data));
    if (lost) resync(); // changes may have been missed while away
    lost = false;
  });
  source.addEventListener("row", function (ev) { applyRow(JSON.parse(ev.data)); });
  source.addEventListener("clock", function (ev) { setClock(JSON.parse(ev.data)); });
  source.addEventListener("reset", function (ev) { setClock(JSON.parse(ev.data)); resync(); });
  source.onerror = function () { lost = true; setLive("reconnecting…", "off"); };
  window.addEventListener("pagehide", function () { source.close(); });
})();
