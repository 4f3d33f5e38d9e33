// choiceboard's own script: small and optional. Pages work without it (forms post and
// redirect); with it they are live. No inline scripts anywhere, no eval: a strict CSP holds.
(function () {
  "use strict";
  var FRAGMENT_EVENTS = { remaining: 1, status: 1, viewers: 1, board: 1 };
  var main = document.querySelector("main");
  var choiceId = main && main.getAttribute("data-choice-id");
  var badge = document.getElementById("badge");
  var state = { conn: "connecting", last: 0, failures: 0, notifiedSoon: null, notifiedEnd: false, lastStatus: null };

  // --- Streams: our named SSE events carry hx-swap-oob fragments. htmx 4 swaps unnamed
  // messages and dispatches named ones as DOM events, so hand ours to its swap.
  document.addEventListener("htmx:sse:before:message", function (e) {
    var m = e.detail && e.detail.message;
    if (m && FRAGMENT_EVENTS[m.event]) m.event = "";
  });
  document.addEventListener("htmx:sse:after:message", function () { setConn("live"); state.failures = 0; });
  document.addEventListener("htmx:sse:after:connection", function () { setConn("live"); });
  document.addEventListener("htmx:sse:error", function () {
    state.failures++;
    setConn(navigator.onLine === false ? "offline" : "reconnecting");
    if (isDashboard() && state.failures >= 3 && mode() === "live") fallBackToPolling();
  });
  document.addEventListener("htmx:sse:close", function (e) {
    var reason = e.detail && e.detail.reason;
    if (reason === "message") setConn("closed");
    else if (!document.hidden && reason !== "removed") setConn("reconnecting");
  });
  // A tab brought back to the front reconnects at once. The server's `retry:` (spread out,
  // so a wave of reconnects after a restart does not arrive all at once) is for lost streams.
  var resumed = false;
  document.addEventListener("visibilitychange", function () { if (!document.hidden) resumed = true; });
  document.addEventListener("htmx:sse:before:connection", function (e) {
    var c = e.detail && e.detail.connection;
    if (!resumed || !c) return;
    resumed = false;
    setTimeout(function () { if (c.delayCanceller) c.delayCanceller(); }, 0);
  });
  window.addEventListener("offline", function () { setConn("offline"); });
  window.addEventListener("online", function () { setConn("reconnecting"); });
  document.addEventListener("htmx:after:swap", afterUpdate);
  document.addEventListener("htmx:after:request", function (e) {
    var ok = e.detail && e.detail.ctx && e.detail.ctx.response && e.detail.ctx.response.status < 400;
    if (ok && isDashboard()) { state.last = Date.now(); if (mode() !== "live") setConn("polled"); }
  });

  function setConn(c) {
    state.conn = c;
    if (c === "live" || c === "polled") state.last = Date.now();
    paintBadge();
  }

  function paintBadge() {
    if (!badge) return;
    var ageS = state.last ? Math.round((Date.now() - state.last) / 1000) : null;
    var shown = state.conn;
    var counting = document.querySelector('.remaining[data-status="pending"]');
    if (shown === "live" && counting && ageS !== null && ageS > 3) shown = "delayed";
    var labels = {
      connecting: "Connecting…", live: "Live", delayed: "Delayed", reconnecting: "Reconnecting…",
      offline: "Offline", closed: "Final", polled: isDashboard() && mode() === "manual" ? "Manual" : "Polling",
      fallback: "Live failed: polling"
    };
    badge.setAttribute("data-state", shown);
    badge.querySelector(".badge-state").textContent = labels[shown] || shown;
    badge.querySelector(".badge-age").textContent = ageS === null ? "" : "· last update " + ageS + " s ago";
  }

  // --- Countdowns: between pushes, count down from the server's figures (data-remaining, at
  // the moment the fragment arrived), never from the browser's own clock.
  var stamps = new WeakMap();
  function format(ms) {
    var t = Math.ceil(Math.max(0, ms) / 1000), d = Math.floor(t / 86400), h = Math.floor(t % 86400 / 3600),
      m = Math.floor(t % 3600 / 60), s = t % 60, two = function (n) { return (n < 10 ? "0" : "") + n; };
    if (d) return d + "d " + h + ":" + two(m) + ":" + two(s);
    return h ? h + ":" + two(m) + ":" + two(s) : m + ":" + two(s);
  }
  // Stamped as fragments arrive (not at the next repaint, which a background tab delays).
  function stampAll() {
    var els = document.querySelectorAll("[data-remaining], .ago[data-ago]");
    for (var i = 0; i < els.length; i++) remainingMs(els[i]);
  }
  document.addEventListener("htmx:after:swap", stampAll);
  function remainingMs(el) {
    if (!el.hasAttribute("data-remaining")) {
      if (!stamps.get(el)) stamps.set(el, { t0: performance.now(), r0: parseFloat(el.getAttribute("data-ago")) });
      return 0;
    }
    // Keyed by the figure too: a swap that morphs the element in place brings a new one.
    var raw = el.getAttribute("data-remaining"), st = stamps.get(el);
    if (!st || st.raw !== raw) { st = { t0: performance.now(), r0: parseFloat(raw) * 1000, raw: raw }; stamps.set(el, st); }
    if (el.getAttribute("data-status") !== "pending") return st.r0;
    return Math.max(0, st.r0 - (performance.now() - st.t0));
  }
  function tick() {
    var els = document.querySelectorAll(".remaining[data-remaining]");
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      if (el.getAttribute("data-status") !== "pending") continue;
      var text = format(remainingMs(el));
      if (el.textContent !== text) el.textContent = text;
    }
    var agos = document.querySelectorAll(".ago[data-ago]");
    for (var j = 0; j < agos.length; j++) {
      var st = stamps.get(agos[j]);
      if (!st) { st = { t0: performance.now(), r0: parseFloat(agos[j].getAttribute("data-ago")) }; stamps.set(agos[j], st); }
      var s = Math.round(st.r0 + (performance.now() - st.t0) / 1000);
      var label = s < 60 ? s + " s ago" : s < 3600 ? Math.floor(s / 60) + " min ago" : Math.floor(s / 3600) + " h ago";
      if (agos[j].textContent !== label) agos[j].textContent = label;
    }
    if (choiceId) watchDeadline();
    paintBadge();
  }

  // --- Notifications (choice page): asked for on a click; fire when < 10 s remain while the tab
  // is hidden, and when the choice times out. A hidden tab's stream is paused, so before
  // notifying it asks the server once whether the deadline has moved.
  var notifyButton = document.getElementById("notify");
  if (notifyButton && "Notification" in window && Notification.permission !== "denied") {
    notifyButton.hidden = Notification.permission === "granted";
    notifyButton.addEventListener("click", function () {
      Notification.requestPermission().then(function (p) { notifyButton.hidden = p === "granted"; });
    });
  }
  function canNotify() { return "Notification" in window && Notification.permission === "granted"; }
  function notify(body) {
    if (!canNotify()) return;
    try { new Notification(document.title.replace(/ · choiceboard$/, ""), { body: body, tag: "choiceboard-" + choiceId }); } catch (e) { /* not allowed here */ }
  }
  var confirming = false, lastEndCheck = 0;
  function confirm(then) {
    confirming = true;
    fetch("/choice/" + choiceId, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(then)
      .catch(function () { /* offline: try again on a later tick */ })
      .then(function () { confirming = false; });
  }
  function watchDeadline() {
    var el = document.getElementById("remaining");
    if (!el || el.getAttribute("data-status") !== "pending" || confirming) return;
    // A visible tab hears the status from its stream; a hidden one counts locally and asks.
    if (!document.hidden || !canNotify()) return;
    var deadline = el.getAttribute("data-deadline"), left = remainingMs(el);
    if (left < 10000 && left > 0 && state.notifiedSoon !== deadline) {
      confirm(function (c) {
        state.notifiedSoon = deadline;
        if (c.status === "pending" && c.remaining_seconds < 10) notify("Less than 10 seconds left.");
      });
    } else if (left <= 0 && !state.notifiedEnd && Date.now() - lastEndCheck > 2000) {
      lastEndCheck = Date.now();
      confirm(function (c) {
        if (c.status === "timed_out") { state.notifiedEnd = true; notify("Time is up."); }
      });
    }
  }

  // --- After every swap: status changes (notification, timer sound, draft cleanup).
  function afterUpdate() {
    var status = document.getElementById("status");
    if (!status || !choiceId) return;
    var s = status.getAttribute("data-status") + ":" + status.getAttribute("data-round");
    if (s === state.lastStatus) return;
    var was = state.lastStatus;
    state.lastStatus = s;
    if (was === null) return;
    if (s.indexOf("timed_out") === 0) {
      if (!state.notifiedEnd) notify("Time is up.");
      state.notifiedEnd = true;
      ring();
    } else {
      state.notifiedEnd = false;
    }
    if (status.hasAttribute("data-final")) { try { localStorage.removeItem(draftKey()); } catch (e) { /* private mode */ } }
  }

  // A short chime where the page has been interacted with (browsers allow sound only then).
  var audio = null;
  document.addEventListener("pointerdown", function () {
    if (!audio && window.AudioContext) { try { audio = new AudioContext(); } catch (e) { audio = null; } }
  }, { once: true });
  function ring() {
    if (!audio || main.getAttribute("data-mode") !== "timer") return;
    [0, 0.35, 0.7].forEach(function (at) {
      var o = audio.createOscillator(), g = audio.createGain(), t = audio.currentTime + at;
      o.frequency.value = 880; g.gain.setValueAtTime(0.2, t); g.gain.exponentialRampToValueAtTime(0.001, t + 0.3);
      o.connect(g); g.connect(audio.destination); o.start(t); o.stop(t + 0.3);
    });
  }

  // --- Drafts: what the person ticked and typed survives a refresh (kept in this browser).
  function draftKey() { return "cb.draft." + choiceId; }
  var form = document.getElementById("answer");
  if (form && choiceId) {
    try {
      var saved = JSON.parse(localStorage.getItem(draftKey()) || "null");
      if (saved) {
        var boxes = form.querySelectorAll('input[name="selection"]');
        for (var i = 0; i < boxes.length; i++) boxes[i].checked = saved.selection.indexOf(boxes[i].value) >= 0;
        Object.keys(saved.fields).forEach(function (name) {
          var f = form.elements.namedItem(name);
          if (f && "value" in f) f.value = saved.fields[name];
        });
      }
    } catch (e) { /* no storage, or an old draft: start clean */ }
    var save = function () {
      var draft = { selection: [], fields: {} };
      var els = form.elements;
      for (var i = 0; i < els.length; i++) {
        var el = els[i];
        if (el.name === "selection") { if (el.checked) draft.selection.push(el.value); }
        else if (el.name && (el.type === "text" || el.tagName === "TEXTAREA")) draft.fields[el.name] = el.value;
      }
      try { localStorage.setItem(draftKey(), JSON.stringify(draft)); } catch (e) { /* private mode */ }
    };
    form.addEventListener("input", save);
    form.addEventListener("change", save);
  }

  // --- Dashboard: Live (SSE) / Polling every N s / Manual, remembered in this browser, and a
  // fallback to polling when the live stream keeps failing.
  function isDashboard() { return !!document.getElementById("board"); }
  var modes = document.getElementById("modes");
  var pollTimer = null, fellBack = false;
  function mode() { try { return localStorage.getItem("cb.mode") || "live"; } catch (e) { return "live"; } }
  function pollSeconds() {
    var n = parseInt((document.getElementById("poll-seconds") || {}).value, 10);
    return Math.min(60, Math.max(5, isNaN(n) ? 10 : n));
  }
  function fetchBoard() { htmx.ajax("GET", "/board", { target: "#board", swap: "outerHTML" }); }
  function applyMode(m, remember) {
    if (remember) { try { localStorage.setItem("cb.mode", m); } catch (e) { /* private mode */ } }
    modes.setAttribute("data-mode", m);
    var buttons = modes.querySelectorAll("button[data-mode]");
    for (var i = 0; i < buttons.length; i++) buttons[i].setAttribute("aria-pressed", String(buttons[i].getAttribute("data-mode") === m));
    clearInterval(pollTimer);
    var stream = document.getElementById("stream");
    if (m === "live") {
      fellBack = false;
      if (!stream) {
        stream = document.createElement("div");
        stream.id = "stream";
        stream.setAttribute("hx-sse:connect", "/events");
        main.appendChild(stream);
        htmx.process(stream);
      }
      setConn("connecting");
    } else {
      if (stream) stream.remove();
      if (m === "poll") { pollTimer = setInterval(fetchBoard, pollSeconds() * 1000); fetchBoard(); }
      setConn(fellBack ? "fallback" : "polled");
    }
  }
  function fallBackToPolling() {
    fellBack = true;
    applyMode("poll", false);
    setConn("fallback");
  }
  if (modes && isDashboard()) {
    modes.hidden = false;
    modes.addEventListener("click", function (e) {
      var b = e.target.closest("button[data-mode]");
      if (b) applyMode(b.getAttribute("data-mode"), true);
    });
    document.getElementById("poll-seconds").value = (function () { try { return localStorage.getItem("cb.poll") || "10"; } catch (e) { return "10"; } })();
    document.getElementById("poll-seconds").addEventListener("change", function () {
      try { localStorage.setItem("cb.poll", String(pollSeconds())); } catch (e) { /* private mode */ }
      if (mode() === "poll") applyMode("poll", false);
    });
    document.getElementById("refresh").addEventListener("click", function (e) { e.preventDefault(); fetchBoard(); });
    if (mode() !== "live") applyMode(mode(), false);
    else applyMode("live", false);
  }

  // --- Share: copy the page's link (the QR code needs no script).
  var copy = document.getElementById("copy"), link = document.getElementById("link");
  if (copy && link && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(link.value).then(function () {
        copy.textContent = "Copied";
        setTimeout(function () { copy.textContent = "Copy link"; }, 1500);
      });
    });
  }

  // --- Dashboard filter (source, level): the live board is the same for everyone, so the
  // filter hides here what it leaves out, after every swap too. Without JS the form asks the
  // server for a filtered page.
  var filterForm = document.getElementById("filter");
  function applyFilter() {
    if (!filterForm) return;
    var source = filterForm.elements.source.value, level = filterForm.elements.level.value;
    var items = document.querySelectorAll("#board [data-source], #board .note[data-level]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i], hide = false;
      if (source && el.hasAttribute("data-source") && el.getAttribute("data-source") !== source) hide = true;
      if (level && el.classList.contains("note") && el.getAttribute("data-level") !== level) hide = true;
      el.hidden = hide;
    }
  }
  if (filterForm) {
    document.getElementById("filter-apply").hidden = true;
    filterForm.addEventListener("change", function () {
      var q = new URLSearchParams(new FormData(filterForm));
      history.replaceState(null, "", q.toString() === "source=&level=" ? "/" : "/?" + q.toString());
      applyFilter();
    });
    // Whenever the board is replaced (stream, polling, refresh), before it is painted.
    new MutationObserver(applyFilter).observe(main, { childList: true, subtree: true });
  }

  // Installable, with an honest offline page (static/sw.js caches nothing else).
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(function () {});

  // --- Web Push (dashboard): "Notify this device" subscribes this browser through its push
  // service and gives the server the subscription; static/sw.js shows what arrives, even with
  // no tab open. The server knows a device by its endpoint's SHA-256, so "Stop" needs no
  // stored id.
  var push = document.getElementById("push");
  if (push && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window && window.crypto && crypto.subtle) {
    var pushButton = document.getElementById("push-device"), pushStatus = document.getElementById("push-status");
    push.hidden = false;
    var showDevice = function (subscribed, message) {
      pushButton.textContent = subscribed ? "Stop notifying this device" : "Notify this device";
      pushButton.setAttribute("aria-pressed", subscribed ? "true" : "false");
      pushStatus.textContent = message || "";
    };
    var api = function (method, path, body) {
      return fetch(path, { method: method, headers: body ? { "content-type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined })
        .then(function (r) {
          if (r.ok || (method === "DELETE" && r.status === 404)) return r.status === 204 || r.status === 404 ? null : r.json();
          return r.json().then(function (b) { throw new Error(b.error ? b.error.message : "the server answered " + r.status); });
        });
    };
    var keyBytes = function (base64url) {
      var raw = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
      var bytes = new Uint8Array(raw.length);
      for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      return bytes;
    };
    var deviceId = function (endpoint) {
      return crypto.subtle.digest("SHA-256", new TextEncoder().encode(endpoint)).then(function (hash) {
        var bytes = new Uint8Array(hash).slice(0, 16), text = "";
        for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
        return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
      });
    };
    var subscribe = function (registration) {
      return Notification.requestPermission().then(function (permission) {
        if (permission !== "granted") throw new Error("notifications are blocked for this site in the browser's settings");
        return api("GET", "/api/push/key");
      }).then(function (key) {
        // A browser without a reachable push service may never answer: give up after 8 s.
        var late = new Promise(function (_, fail) { setTimeout(function () { fail(new Error("no answer in 8 s")); }, 8000); });
        return Promise.race([registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key.public_key) }), late])
          .catch(function (e) { throw new Error("this browser's push service did not answer (" + e.message + ")"); });
      }).then(function (subscription) {
        return api("POST", "/api/push/subscriptions", subscription.toJSON());
      }).then(function () { showDevice(true, "This device will be notified."); });
    };
    var unsubscribe = function (subscription) {
      return deviceId(subscription.endpoint).then(function (id) {
        return api("DELETE", "/api/push/subscriptions/" + id);
      }).then(function () { return subscription.unsubscribe(); })
        .then(function () { showDevice(false, "This device will no longer be notified."); });
    };
    navigator.serviceWorker.ready.then(function (registration) {
      return registration.pushManager.getSubscription();
    }).then(function (subscription) {
      showDevice(!!subscription);
      // The server may have lost it (a new database): giving it again is harmless.
      if (subscription) api("POST", "/api/push/subscriptions", subscription.toJSON()).catch(function () {});
    });
    pushButton.addEventListener("click", function () {
      pushButton.disabled = true;
      pushStatus.textContent = "";
      navigator.serviceWorker.ready.then(function (registration) {
        return registration.pushManager.getSubscription().then(function (subscription) {
          return subscription ? unsubscribe(subscription) : subscribe(registration);
        });
      }).catch(function (e) {
        pushStatus.textContent = "Not notified: " + e.message + ".";
      }).then(function () { pushButton.disabled = false; });
    });
  }

  stampAll();
  if (badge) { badge.setAttribute("data-state", "connecting"); paintBadge(); }
  afterUpdate();
  setInterval(tick, 250);
})();
