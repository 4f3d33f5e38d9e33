// The dashboard: Live (SSE) / Polling every N s / Manual, remembered in this browser, with a
// fall-back to polling when the live stream keeps failing; and the filter by source and level.
import { heard, setConn } from "./live.js";

const main = document.querySelector("main");
const modes = document.getElementById("modes");
const seconds = document.getElementById("poll-seconds");
let pollTimer = null, fellBack = false;

function remembered(key, otherwise) {
  try { return localStorage.getItem(key) || otherwise; } catch (e) { return otherwise; }
}
function remember(key, value) {
  try { localStorage.setItem(key, value); } catch (e) { /* private mode */ }
}
const mode = () => remembered("cb.mode", "live");
function pollSeconds() {
  const n = parseInt(seconds.value, 10);
  return Math.min(60, Math.max(5, isNaN(n) ? 10 : n));
}
const fetchBoard = () => htmx.ajax("GET", "/board", { target: "#board", swap: "outerHTML" });
const idle = (m) => (fellBack ? "fallback" : m === "manual" ? "manual" : "polled");

function applyMode(m, keep) {
  if (keep) remember("cb.mode", m);
  modes.dataset.mode = m;
  for (const b of modes.querySelectorAll("button[data-mode]")) b.setAttribute("aria-pressed", String(b.dataset.mode === m));
  clearInterval(pollTimer);
  let stream = document.getElementById("stream");
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
    setConn(idle(m));
  }
}

if (modes && document.getElementById("board")) {
  modes.hidden = false;
  modes.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-mode]");
    if (b) applyMode(b.dataset.mode, true);
  });
  seconds.value = remembered("cb.poll", "10");
  seconds.addEventListener("change", () => {
    remember("cb.poll", String(pollSeconds()));
    if (mode() === "poll") applyMode("poll", false);
  });
  document.getElementById("refresh").addEventListener("click", (e) => { e.preventDefault(); fetchBoard(); });
  document.addEventListener("cb:stream-failing", () => {
    if (mode() !== "live" || fellBack) return;
    fellBack = true;
    applyMode("poll", false);
  });
  document.addEventListener("htmx:after:request", (e) => {
    const response = e.detail && e.detail.ctx && e.detail.ctx.response;
    if (!response || response.status >= 400) return;
    heard();
    if (mode() !== "live" || fellBack) setConn(idle(mode()));
  });
  applyMode(mode(), false);
}

// --- Filter (source, level): the live board is the same for everyone, so the filter hides
// here what it leaves out, again after every swap, before it is painted. Without JS the form
// asks the server for a filtered page.
const filter = document.getElementById("filter");
function applyFilter() {
  const source = filter.elements.source.value, level = filter.elements.level.value;
  for (const el of document.querySelectorAll("#board [data-source], #board .note[data-level]")) {
    const otherSource = source && el.hasAttribute("data-source") && el.dataset.source !== source;
    const otherLevel = level && el.classList.contains("note") && el.dataset.level !== level;
    el.hidden = Boolean(otherSource || otherLevel);
  }
}
if (filter) {
  document.getElementById("filter-apply").hidden = true;
  filter.addEventListener("change", () => {
    const q = new URLSearchParams(new FormData(filter));
    history.replaceState(null, "", q.toString() === "source=&level=" ? "/" : "/?" + q.toString());
    applyFilter();
  });
  document.addEventListener("htmx:after:swap", applyFilter);
}
