// claimsvc console: small progressive enhancements. Every page works without
// this file; it adds keyboard shortcuts, clickable rows, confirmations, local
// times and a live refresh of the part of the page marked data-refresh.
(function () {
  "use strict";
  var prefix = (document.querySelector(".brand") || {}).getAttribute ? document.querySelector(".brand").getAttribute("href").replace(/\/$/, "") : "/ui";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) { t.title = d.toLocaleString(); }
    });
  }

  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-href]")); }
  var sel = -1;
  function select(i) {
    var r = rows();
    if (!r.length) { return; }
    sel = Math.max(0, Math.min(r.length - 1, i));
    r.forEach(function (x) { x.classList.remove("sel"); });
    r[sel].classList.add("sel");
    r[sel].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("click", function (e) {
    var tr = e.target.closest && e.target.closest("tr[data-href]");
    if (tr && !e.target.closest("a, button, input, select")) { location.href = tr.getAttribute("data-href"); }
    if (e.target.closest && e.target.closest("[data-help]")) { var h = document.getElementById("help"); if (h && h.showModal) { h.showModal(); } }
    var rv = e.target.closest && e.target.closest("[data-reveal]");
    if (rv) {
      var inp = document.getElementById(rv.getAttribute("data-reveal"));
      inp.type = inp.type === "password" ? "text" : "password";
      rv.textContent = inp.type === "password" ? "show" : "hide";
    }
  });

  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  });

  var pending = "";
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)))) { return; }
    var k = e.key;
    if (pending === "g") {
      pending = "";
      var to = { o: "/", c: "/claims", i: "/import" }[k];
      if (to) { location.href = prefix + to; e.preventDefault(); }
      return;
    }
    switch (k) {
      case "g": pending = "g"; setTimeout(function () { pending = ""; }, 1200); break;
      case "n": location.href = prefix + "/new"; break;
      case "/": var s = document.querySelector("[data-search]"); if (s) { s.focus(); s.select(); } else { location.href = prefix + "/claims"; } break;
      case "j": select(sel + 1); break;
      case "k": select(sel - 1); break;
      case "Enter": var r = rows(); if (sel >= 0 && r[sel]) { location.href = r[sel].getAttribute("data-href"); } else { return; } break;
      case "?": var h = document.getElementById("help"); if (h && h.showModal) { h.showModal(); } break;
      default: return;
    }
    e.preventDefault();
  });

  // Live refresh: fetch the page again and swap the part marked #live, unless
  // the person is typing in a form or has a row selected.
  function refresh() {
    var live = document.getElementById("live");
    if (!live || !live.hasAttribute("data-refresh")) { return; }
    var secs = parseInt(live.getAttribute("data-refresh"), 10) || 5;
    setTimeout(function () {
      var a = document.activeElement;
      if (document.hidden || (a && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName)) || sel >= 0) { refresh(); return; }
      fetch(location.href, { credentials: "same-origin", headers: { "X-Requested-With": "refresh" } })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
          var cur = document.getElementById("live");
          if (next && cur) { cur.replaceWith(next); localTimes(next); }
          refresh();
        })
        .catch(function () { setTimeout(refresh, 5000); });
    }, secs * 1000);
  }

  localTimes(document);
  refresh();
})();
