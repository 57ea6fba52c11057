/* The phone page's service worker: the page and its assets from the cache when there is no network (the
 * network first otherwise, so a new release shows at once), the categories and the worker's grid too,
 * Background Sync: kept reports are sent even when the page is closed (outbox.js), and the bell's
 * notifications (a tap opens the page at the case). A copy from the cache is marked Gridcase-Cached. */
'use strict';
importScripts('/app/assets/vendor/idb/idb.umd.js', '/app/outbox.js');

const CACHE = 'gridcase-app-v1';
const SHELL = [
  '/app/', '/app/app.js', '/app/app.css', '/app/outbox.js', '/app/manifest.webmanifest',
  '/app/assets/gridcase.js', '/app/assets/gridcase.css', '/app/assets/areas.js', '/app/assets/bell.js',
  '/app/assets/bell.svg', '/app/assets/feed.js',
  '/app/assets/vendor/leaflet/leaflet.js', '/app/assets/vendor/leaflet/leaflet.css',
  '/app/assets/vendor/leaflet/images/marker-icon.png', '/app/assets/vendor/leaflet/images/marker-icon-2x.png',
  '/app/assets/vendor/leaflet/images/marker-shadow.png', '/app/assets/vendor/idb/idb.umd.js',
];
// GET answers worth having offline: the shell above, the categories, the area map, the API description.
const KEEP = [/^\/app\//, /^\/intake\/v1\/categories$/, /^\/dispatch\/v1\/areas$/, /^\/intake\/openapi\.json$/];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

/** A kept answer, marked `Gridcase-Cached: 1`: the page then knows the network failed although it got an
 *  answer, and its network indicator says offline (gridcase.js, `gc:network`). */
function cached(hit) {
  const headers = new Headers(hit.headers);
  headers.set('Gridcase-Cached', '1');
  return new Response(hit.body, { status: hit.status, statusText: hit.statusText, headers });
}

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !KEEP.some((re) => re.test(url.pathname))) return;
  event.respondWith(fetch(event.request).then((response) => {
    if (response.ok) {
      const copy = response.clone();
      caches.open(CACHE).then((cache) => cache.put(event.request, copy));
    }
    return response;
  }).catch(() => caches.match(event.request, { ignoreVary: true }).then((hit) => (hit ? cached(hit) : Response.error()))));
});

self.addEventListener('sync', (event) => {
  if (event.tag === 'gridcase-outbox') event.waitUntil(self.GridcaseOutbox.flush());
});

// A notification the bell showed (bell.js, through this worker): a tap brings the page forward, at the case.
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const caseId = (event.notification.data || {}).case_id;
  const url = '/app/' + (caseId ? '#case=' + encodeURIComponent(caseId) : '');
  event.waitUntil(self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((open) => {
    const page = open.find((c) => new URL(c.url).pathname.startsWith('/app/'));
    if (!page) return self.clients.openWindow(url);
    if (caseId) page.postMessage({ type: 'open-case', case_id: caseId });
    return page.focus();
  }));
});
