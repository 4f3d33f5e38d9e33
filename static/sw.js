// choiceboard's service worker. It makes the dashboard installable on a phone's home screen and,
// offline, answers a page with one that says so. It caches nothing else: a page or a fragment
// from a cache would show a stale countdown, so everything but an offline navigation goes to
// the network exactly as if there were no worker. It also shows Web Push messages (src/notify.rs
// writes them) and answers from their buttons.
var OFFLINE = "/offline";
var CACHE = "choiceboard-offline-1";

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return cache.add(OFFLINE);
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (key) { return key !== CACHE; }).map(function (key) {
      return caches.delete(key);
    }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  if (event.request.mode !== "navigate") return;
  event.respondWith(fetch(event.request).catch(function () { return caches.match(OFFLINE); }));
});

// A push is one JSON object: title, body, url, tag (the choice id: a newer push about a choice
// replaces its notification), actions, answer (the submit URL) and final (decided: shown
// quietly, nothing left to tap).
self.addEventListener("push", function (event) {
  var push;
  try { push = event.data ? event.data.json() : {}; } catch (e) { push = { body: event.data.text() }; }
  var options = {
    body: push.body || "",
    icon: "/static/icon-192.png",
    data: { url: push.url || "/", answer: push.answer },
    actions: (push.actions || []).slice(0, (self.Notification && Notification.maxActions) || 2),
    silent: !!push.final,
  };
  if (push.tag) { options.tag = push.tag; options.renotify = !push.final; }
  event.waitUntil(self.registration.showNotification(push.title || "choiceboard", options));
});

// A tap on a button answers; a tap elsewhere opens the choice (or the tab already showing it).
self.addEventListener("notificationclick", function (event) {
  var notification = event.notification;
  notification.close();
  event.waitUntil(event.action ? answer(notification, event.action) : openChoice(notification.data.url));
});

// Posts the option as the page's form would. When the server says no (someone else decided,
// the time is up), the notification says why instead of vanishing.
function answer(notification, option) {
  var data = notification.data;
  var tellWhy = function (why) {
    return self.registration.showNotification(notification.title, { body: why, tag: notification.tag, data: data });
  };
  return fetch(data.answer, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: "selection=" + encodeURIComponent(option) + "&via=push",
  }).then(function (r) {
    if (r.ok) return; // the server pushes the result next
    return r.json().then(function (b) { return tellWhy(b.error ? b.error.message : "The answer was refused."); });
  }, function () { return tellWhy("Offline: the answer was not sent."); });
}

function openChoice(url) {
  return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (tabs) {
    for (var i = 0; i < tabs.length; i++) if (tabs[i].url === url && "focus" in tabs[i]) return tabs[i].focus();
    return self.clients.openWindow(url);
  });
}
