// The choice page: notifications when time runs short in a hidden tab, a chime when a timer
// ends, drafts that survive a refresh, and copying the link.
import { everySecond, remainingMs } from "./live.js";

const main = document.querySelector("main");
const choiceId = main && main.dataset.choiceId;
const state = { notifiedSoon: null, notifiedEnd: false, lastStatus: null };

// --- Notifications: asked for on a click; fire when < 10 s remain while the tab is hidden,
// and when the choice times out. A hidden tab's stream is paused, so before notifying it asks
// the server once whether the deadline has moved.
const notifyButton = document.getElementById("notify");
if (notifyButton && "Notification" in window && Notification.permission !== "denied") {
  notifyButton.hidden = Notification.permission === "granted";
  notifyButton.addEventListener("click", () => {
    Notification.requestPermission().then((p) => { notifyButton.hidden = p === "granted"; });
  });
}
const canNotify = () => "Notification" in window && Notification.permission === "granted";
function notify(body) {
  if (!canNotify()) return;
  try {
    new Notification(document.title.replace(/ · choiceboard$/, ""), { body, tag: "choiceboard-" + choiceId });
  } catch (e) { /* not allowed here */ }
}

let confirming = false, lastEndCheck = 0;
function confirm(then) {
  confirming = true;
  fetch("/choice/" + choiceId, { headers: { Accept: "application/json" } })
    .then((r) => r.json())
    .then(then)
    .catch(() => { /* offline: try again on a later tick */ })
    .then(() => { confirming = false; });
}

function watchDeadline() {
  const el = document.getElementById("remaining");
  if (!el || el.dataset.status !== "pending" || confirming) return;
  // A visible tab hears the status from its stream; a hidden one counts locally and asks.
  if (!document.hidden || !canNotify()) return;
  const deadline = el.dataset.deadline, left = remainingMs(el);
  if (left < 10000 && left > 0 && state.notifiedSoon !== deadline) {
    confirm((c) => {
      state.notifiedSoon = deadline;
      if (c.status === "pending" && c.remaining_seconds < 10) notify("Less than 10 seconds left.");
    });
  } else if (left <= 0 && !state.notifiedEnd && Date.now() - lastEndCheck > 2000) {
    lastEndCheck = Date.now();
    confirm((c) => {
      if (c.status === "timed_out") { state.notifiedEnd = true; notify("Time is up."); }
    });
  }
}

// --- After every swap: status changes (notification, timer sound, draft cleanup).
function afterUpdate() {
  const status = document.getElementById("status");
  if (!status) return;
  const s = status.dataset.status + ":" + status.dataset.round;
  if (s === state.lastStatus) return;
  const was = state.lastStatus;
  state.lastStatus = s;
  if (was === null) return;
  if (s.startsWith("timed_out")) {
    if (!state.notifiedEnd) notify("Time is up.");
    state.notifiedEnd = true;
    ring();
  } else {
    state.notifiedEnd = false;
  }
  if (status.hasAttribute("data-final")) {
    try { localStorage.removeItem(draftKey()); } catch (e) { /* private mode */ }
  }
}

// A short chime where the page has been interacted with (browsers allow sound only then).
let audio = null;
document.addEventListener("pointerdown", () => {
  if (!audio && window.AudioContext) { try { audio = new AudioContext(); } catch (e) { audio = null; } }
}, { once: true });
function ring() {
  if (!audio || main.dataset.mode !== "timer") return;
  for (const at of [0, 0.35, 0.7]) {
    const o = audio.createOscillator(), g = audio.createGain(), t = audio.currentTime + at;
    o.frequency.value = 880;
    g.gain.setValueAtTime(0.2, t);
    g.gain.exponentialRampToValueAtTime(0.001, t + 0.3);
    o.connect(g); g.connect(audio.destination); o.start(t); o.stop(t + 0.3);
  }
}

// --- Drafts: what the person ticked and typed survives a refresh (kept in this browser).
const draftKey = () => "cb.draft." + choiceId;
const form = document.getElementById("answer");
if (form) {
  try {
    const saved = JSON.parse(localStorage.getItem(draftKey()) || "null");
    if (saved) {
      for (const box of form.querySelectorAll('input[name="selection"]')) box.checked = saved.selection.includes(box.value);
      for (const name of Object.keys(saved.fields)) {
        const field = form.elements.namedItem(name);
        if (field && "value" in field) field.value = saved.fields[name];
      }
    }
  } catch (e) { /* no storage, or an old draft: start clean */ }
  const save = () => {
    const draft = { selection: [], fields: {} };
    for (const el of form.elements) {
      if (el.name === "selection") { if (el.checked) draft.selection.push(el.value); }
      else if (el.name && (el.type === "text" || el.tagName === "TEXTAREA")) draft.fields[el.name] = el.value;
    }
    try { localStorage.setItem(draftKey(), JSON.stringify(draft)); } catch (e) { /* private mode */ }
  };
  form.addEventListener("input", save);
  form.addEventListener("change", save);
}

// --- Share: copy the page's link (the QR code needs no script).
const copy = document.getElementById("copy"), link = document.getElementById("link");
if (copy && link && navigator.clipboard) {
  copy.hidden = false;
  copy.addEventListener("click", () => {
    navigator.clipboard.writeText(link.value).then(() => {
      copy.textContent = "Copied";
      setTimeout(() => { copy.textContent = "Copy link"; }, 1500);
    });
  });
}

if (choiceId) {
  document.addEventListener("htmx:after:swap", afterUpdate);
  everySecond(watchDeadline);
  afterUpdate();
}
