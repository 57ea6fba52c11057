/* The phone's outbox: reports kept in IndexedDB (idb) until the server has them.
 *
 * A report is written here first, with the Idempotency-Key it will always be sent with, and only then
 * sent; it leaves the outbox when the server answers 2xx (the case number is kept in `sent`). A report
 * sent twice — the answer lost, two tabs, the page and the service worker at once — is one case, because
 * the key is the same; a Web Lock makes the page and the service worker take turns anyway. A report the
 * server refuses (4xx) stays, marked with the refusal, for the worker to see.
 *
 * Used by the page (app.js) and by the service worker (sw.js, for Background Sync): no DOM here.
 */
(function (scope) {
  'use strict';
  const REPORTS = '/intake/v1/reports';
  let opened = null;

  function db() {
    opened = opened || scope.idb.openDB('gridcase-app', 1, {
      upgrade(d) {
        d.createObjectStore('outbox', { keyPath: 'key' });
        d.createObjectStore('sent', { keyPath: 'key' });
      },
    });
    return opened;
  }

  function newKey() {
    if (scope.crypto && scope.crypto.randomUUID) return scope.crypto.randomUUID();
    const b = scope.crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  /** Keep a report (its body, an optional photo Blob and the token to send it with); returns its key. */
  async function add(body, token, photo, photoField) {
    const item = { key: newKey(), body, token, photo: photo || null, photoField: photoField || null, queued_at: new Date().toISOString(), refused: null };
    await (await db()).put('outbox', item);
    return item.key;
  }

  async function waiting() { return (await db()).getAll('outbox'); }
  async function sent() { return (await db()).getAll('sent'); }

  /** Send one kept report. Resolves to 'sent' | 'refused' | 'retry'; rejects when the network fails. */
  async function send(item) {
    const response = await fetch(REPORTS, {
      method: 'POST', cache: 'no-store',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', Authorization: 'Bearer ' + item.token, 'Idempotency-Key': item.key },
      body: JSON.stringify(item.body),
    });
    const data = (response.headers.get('Content-Type') || '').includes('json') ? await response.json() : null;
    const store = await db();
    if (response.ok) {
      if (item.photo && item.photoField) await sendPhoto(item, data.id, item.photoField);
      await store.put('sent', { key: item.key, id: data.id, number: data.number, body: item.body, sent_at: new Date().toISOString() });
      await store.delete('outbox', item.key);
      return { outcome: 'sent', report: data };
    }
    if (response.status >= 400 && response.status < 500 && ![401, 408, 425, 429].includes(response.status)) {
      item.refused = (data && (data.detail || data.title)) || ('HTTP ' + response.status);
      await store.put('outbox', item);
      return { outcome: 'refused', error: item.refused };
    }
    return { outcome: 'retry' };
  }

  async function sendPhoto(item, reportId, field) {
    const form = new FormData();
    form.append(field, item.photo, 'photo.jpg');
    await fetch(REPORTS + '/' + encodeURIComponent(reportId) + '/photos', {
      method: 'POST', headers: { Authorization: 'Bearer ' + item.token, 'Idempotency-Key': item.key + '-photo' }, body: form,
    });
  }

  /** Send every kept report that was not refused, one at a time, oldest first; `onSent(report)` for each
   *  that went through. Stops at the first network failure (the rest waits for the next try). */
  async function flush(onSent) {
    const run = async () => {
      const items = (await waiting()).filter((i) => !i.refused).sort((a, b) => (a.queued_at < b.queued_at ? -1 : 1));
      for (const item of items) {
        let result;
        try {
          result = await send(item);
        } catch (e) {
          return false; // offline
        }
        if (result.outcome === 'retry') return false;
        if (onSent) onSent(result, item);
      }
      return true;
    };
    if (scope.navigator && scope.navigator.locks) return scope.navigator.locks.request('gridcase-outbox', run);
    return run();
  }

  async function forget(key) { await (await db()).delete('outbox', key); }

  scope.GridcaseOutbox = { add, waiting, sent, flush, forget };
}(self));
