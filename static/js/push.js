// Web Push on the dashboard: "Notify this device" subscribes this browser through its push
// service and gives the server the subscription; /sw.js shows what arrives, even with no tab
// open. The server knows a device by its endpoint's SHA-256, so "Stop" needs no stored id.

const push = document.getElementById("push");
const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window
  && window.crypto && crypto.subtle;

function api(method, path, body) {
  const init = { method, headers: body ? { "content-type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined };
  return fetch(path, init).then((r) => {
    if (r.ok || (method === "DELETE" && r.status === 404)) return r.status === 204 || r.status === 404 ? null : r.json();
    return r.json().then((b) => { throw new Error(b.error ? b.error.message : "the server answered " + r.status); });
  });
}

function keyBytes(base64url) {
  const raw = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function deviceId(endpoint) {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(endpoint)).then((hash) => {
    const text = String.fromCharCode(...new Uint8Array(hash).slice(0, 16));
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  });
}

if (push && supported) {
  const button = document.getElementById("push-device"), status = document.getElementById("push-status");
  push.hidden = false;
  const show = (subscribed, message) => {
    button.textContent = subscribed ? "Stop notifying this device" : "Notify this device";
    button.setAttribute("aria-pressed", subscribed ? "true" : "false");
    status.textContent = message || "";
  };
  const subscribe = (registration) =>
    Notification.requestPermission().then((permission) => {
      if (permission !== "granted") throw new Error("notifications are blocked for this site in the browser's settings");
      return api("GET", "/api/push/key");
    }).then((key) => {
      // A browser without a reachable push service may never answer: give up after 8 s.
      const late = new Promise((_, fail) => setTimeout(() => fail(new Error("no answer in 8 s")), 8000));
      const subscribed = registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key.public_key) });
      return Promise.race([subscribed, late])
        .catch((e) => { throw new Error("this browser's push service did not answer (" + e.message + ")"); });
    }).then((subscription) => api("POST", "/api/push/subscriptions", subscription.toJSON()))
      .then(() => show(true, "This device will be notified."));
  const unsubscribe = (subscription) =>
    deviceId(subscription.endpoint)
      .then((id) => api("DELETE", "/api/push/subscriptions/" + id))
      .then(() => subscription.unsubscribe())
      .then(() => show(false, "This device will no longer be notified."));

  navigator.serviceWorker.ready
    .then((registration) => registration.pushManager.getSubscription())
    .then((subscription) => {
      show(Boolean(subscription));
      // The server may have lost it (a new database): giving it again is harmless.
      if (subscription) api("POST", "/api/push/subscriptions", subscription.toJSON()).catch(() => {});
    });
  button.addEventListener("click", () => {
    button.disabled = true;
    status.textContent = "";
    navigator.serviceWorker.ready
      .then((registration) => registration.pushManager.getSubscription()
        .then((subscription) => (subscription ? unsubscribe(subscription) : subscribe(registration))))
      .catch((e) => { status.textContent = "Not notified: " + e.message + "."; })
      .then(() => { button.disabled = false; });
  });
}
