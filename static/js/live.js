// Every page: the connection badge, the stream's lifecycle (a closing tab says it left), the
// countdowns between pushes, and the service worker. The server sends its fragments unnamed on
// our pages' streams, so htmx swaps them itself (each carries hx-swap-oob and its id); nothing
// here touches one.

const badge = document.getElementById("badge");
// A final page has no stream, and its badge says "Final" from the server ("closed", the state a
// stream ends in once its choice is final). Nothing changes a closed page's badge again.
const state = { conn: badge && badge.dataset.state === "closed" ? "closed" : "connecting", last: 0, failures: 0 };
const LABELS = {
  connecting: "Connecting…", live: "Live", delayed: "Delayed", reconnecting: "Reconnecting…",
  offline: "Offline", closed: "Final", polled: "Polling", manual: "Manual", fallback: "Live failed: polling",
};

/** The connection's state, as the badge says it: "live", "polled", "offline", … */
export function setConn(conn) {
  if (state.conn === "closed") return;
  state.conn = conn;
  if (conn === "live" || conn === "polled" || conn === "manual") state.last = Date.now();
  paintBadge();
}

/** A successful poll or refresh (the dashboard's): the page is current as of now. */
export function heard() {
  state.last = Date.now();
  paintBadge();
}

function paintBadge() {
  if (!badge) return;
  const age = state.last ? Math.round((Date.now() - state.last) / 1000) : null;
  let shown = state.conn;
  if (shown === "live" && age !== null && age > 3 && countdowns.some((el) => el.dataset.status === "pending")) shown = "delayed";
  badge.dataset.state = shown;
  badge.querySelector(".badge-state").textContent = LABELS[shown] || shown;
  badge.querySelector(".badge-age").textContent = age === null ? "" : "· last update " + age + " s ago";
}

document.addEventListener("htmx:sse:after:message", () => { state.failures = 0; setConn("live"); });
document.addEventListener("htmx:sse:after:connection", () => setConn("live"));
document.addEventListener("htmx:sse:error", () => {
  state.failures++;
  setConn(navigator.onLine === false ? "offline" : "reconnecting");
  // The dashboard falls back to polling when its stream keeps failing.
  if (state.failures >= 3) document.dispatchEvent(new CustomEvent("cb:stream-failing"));
});
document.addEventListener("htmx:sse:close", (e) => {
  const reason = e.detail && e.detail.reason;
  if (reason === "message") setConn("closed");
  else if (!document.hidden && reason !== "removed") setConn("reconnecting");
});
// A tab brought back to the front reconnects at once. The server's `retry:` (spread out, so a
// wave of reconnects after a restart does not arrive all at once) is for lost streams.
// htmx resumes a paused stream from a visibilitychange listener of its own, which may run
// before this one or after it; so the delay it then waits is cut short on a timer, once both
// have run, and also when the resumption comes a moment later.
const waiting = new Set();
let shownAt = -Infinity;
const cutShort = (connection) => { if (connection.delayCanceller) connection.delayCanceller(); };
document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  shownAt = performance.now();
  setTimeout(() => waiting.forEach(cutShort), 0);
});
document.addEventListener("htmx:sse:before:connection", (e) => {
  const connection = e.detail && e.detail.connection;
  if (!connection) return;
  waiting.add(connection);
  if (performance.now() - shownAt < 1000) setTimeout(() => cutShort(connection), 0);
});
for (const done of ["htmx:sse:after:connection", "htmx:sse:close"]) {
  document.addEventListener(done, (e) => waiting.delete(e.detail && e.detail.connection));
}
window.addEventListener("offline", () => setConn("offline"));
window.addEventListener("online", () => setConn("reconnecting"));
// A tab closing says so (`data-leave` on its stream), so this browser stops counting as a viewer
// at once rather than after the grace period the server keeps for a stream that blips. A reload
// says so too; the server gives it a moment to come back.
window.addEventListener("pagehide", () => {
  const stream = document.getElementById("stream");
  const leave = stream && stream.dataset.leave;
  if (leave && navigator.sendBeacon) navigator.sendBeacon(leave);
});

// --- Countdowns: between pushes, count down from the server's figures (data-remaining, at the
// moment the fragment arrived), never from the browser's own clock. The elements are found
// once per swap, not on every tick.
let countdowns = [];
let agos = [];
const stamps = new WeakMap();

function format(ms) {
  const t = Math.ceil(Math.max(0, ms) / 1000), d = Math.floor(t / 86400), h = Math.floor((t % 86400) / 3600),
    m = Math.floor((t % 3600) / 60), s = t % 60, two = (n) => (n < 10 ? "0" : "") + n;
  if (d) return d + "d " + h + ":" + two(m) + ":" + two(s);
  return h ? h + ":" + two(m) + ":" + two(s) : m + ":" + two(s);
}

/** Milliseconds left on a countdown element, counted from when its figure arrived. */
export function remainingMs(el) {
  // Keyed by the figure too: a swap that morphs the element in place brings a new one.
  const raw = el.dataset.remaining;
  let stamp = stamps.get(el);
  if (!stamp || stamp.raw !== raw) {
    stamp = { t0: performance.now(), r0: parseFloat(raw) * 1000, raw };
    stamps.set(el, stamp);
  }
  if (el.dataset.status !== "pending") return stamp.r0;
  return Math.max(0, stamp.r0 - (performance.now() - stamp.t0));
}

// Stamped as fragments arrive (not at the next tick, which a background tab delays).
function collect() {
  countdowns = Array.from(document.querySelectorAll(".remaining[data-remaining]"));
  agos = Array.from(document.querySelectorAll(".ago[data-ago]"));
  countdowns.forEach(remainingMs);
  for (const el of agos) if (!stamps.has(el)) stamps.set(el, { t0: performance.now(), r0: parseFloat(el.dataset.ago) });
}

const tickers = [];
/** Runs `fn` once a second, after the countdowns are painted. */
export function everySecond(fn) { tickers.push(fn); }

function tick() {
  for (const el of countdowns) {
    if (el.dataset.status !== "pending" || !el.isConnected) continue;
    const text = format(remainingMs(el));
    if (el.textContent !== text) el.textContent = text;
  }
  for (const el of agos) {
    const stamp = stamps.get(el);
    const s = Math.round(stamp.r0 + (performance.now() - stamp.t0) / 1000);
    const label = s < 60 ? s + " s ago" : s < 3600 ? Math.floor(s / 60) + " min ago" : Math.floor(s / 3600) + " h ago";
    if (el.textContent !== label) el.textContent = label;
  }
  paintBadge();
  tickers.forEach((fn) => fn());
}

document.addEventListener("htmx:after:swap", collect);
collect();
if (badge && state.conn !== "closed") setConn("connecting");
// On the wall-clock second, like the server's ticks, so a late push shows within a second.
setTimeout(() => { tick(); setInterval(tick, 1000); }, 1000 - (Date.now() % 1000));

// Installable, with an honest offline page (/sw.js caches nothing else).
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
