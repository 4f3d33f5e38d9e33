// choiceboard's service worker. It makes the dashboard installable on a phone's home screen and,
// offline, answers a page with one that says so. It caches nothing else: a page or a fragment
// from a cache would show a stale countdown, so everything but an offline navigation goes to
// the network exactly as if there were no worker.
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
