/* The phone's outbox: reports kept in IndexedDB (idb) until the server has them.
 *
 * A report is written here first, with the Idempotency-Key it will always be sent with, and only then
 * sent; it leaves the outbox when the server answers 2xx (the case number is kept in `sent`). A report
 * sent twice — the answer lost, two tabs, the page and the service worker at once — is one case, because
 * the key is the same; a Web Lock makes the page and the service worker take turns anyway. A report the
 * server refuses (4xx) stays, marked with the refusal, for the worker to see.
 *
 * A report's photo (already shrunk to the server's limits by the page) is sent after the report, with
 * its own Idempotency-Key. Until the server has answered it the report stays here, remembering its case
 * number, so that a lost network sends only the photo again. A photo the server refuses (413, 415, 422)
 * is not lost in silence: the outcome carries the refusal (`photoRefused`) for the page to show, and
 * the sent report keeps it.
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

  /** A refusal worth showing a person: the problem's detail (or its first field error), else the status. */
  function refusal(data, status) {
    const first = data && Array.isArray(data.errors) && data.errors[0];
    return (data && (data.detail || (first && first.detail) || data.title)) || ('HTTP ' + status);
  }

  function refusedForGood(status) {
    return status >= 400 && status < 500 && ![401, 408, 425, 429].includes(status);
  }

  /** Send one kept report, then its photo. Resolves to
   *  {outcome: 'sent', report, photoRefused?, refusedPhoto?} | {outcome: 'refused', error} | {outcome: 'retry'} |
   *  {outcome: 'photo_waiting', report} (the report is in, its photo waits for the network or the server);
   *  rejects when the network fails before the report is in. */
  /** The page's language for the server's words (a refusal's detail), as every other call asks (gridcase.js). */
  function language() {
    return scope.gc && scope.gc.lang === 'en' ? 'en' : 'zh-CN,zh;q=0.9';
  }

  async function send(item) {
    const store = await db();
    if (!item.report) {
      const response = await fetch(REPORTS, {
        method: 'POST', cache: 'no-store',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Accept-Language': language(), Authorization: 'Bearer ' + item.token, 'Idempotency-Key': item.key },
        body: JSON.stringify(item.body),
      });
      const data = (response.headers.get('Content-Type') || '').includes('json') ? await response.json() : null;
      if (!response.ok) {
        if (refusedForGood(response.status)) {
          item.refused = refusal(data, response.status);
          await store.put('outbox', item);
          return { outcome: 'refused', error: item.refused };
        }
        return { outcome: 'retry' };
      }
      item.report = { id: data.id, number: data.number };
      if (item.photo && item.photoField) await store.put('outbox', item); // a retry sends only the photo
    }
    if (item.photo && item.photoField) {
      let photo;
      try {
        photo = await sendPhoto(item, item.report.id, item.photoField);
      } catch (e) {
        return { outcome: 'photo_waiting', report: item.report };
      }
      if (photo.outcome === 'retry') return { outcome: 'photo_waiting', report: item.report };
      if (photo.outcome === 'refused') item.photoRefused = photo.error;
    }
    // what is needed to ask the server again about a refused photo (its words in another language)
    const refusedPhoto = item.photoRefused && item.photo
      ? { photo: item.photo, photoField: item.photoField, token: item.token, key: item.key, reportId: item.report.id } : null;
    await store.put('sent', { key: item.key, id: item.report.id, number: item.report.number, body: item.body, photo_refused: item.photoRefused || null, sent_at: new Date().toISOString() });
    await store.delete('outbox', item.key);
    return { outcome: 'sent', report: item.report, photoRefused: item.photoRefused || null, refusedPhoto };
  }

  /** Send a report's photo: {outcome: 'sent' | 'refused' (with error) | 'retry'}; rejects offline. */
  async function sendPhoto(item, reportId, field) {
    const form = new FormData();
    form.append(field, item.photo, item.photo.type === 'image/png' ? 'photo.png' : 'photo.jpg');
    const response = await fetch(REPORTS + '/' + encodeURIComponent(reportId) + '/photos', {
      method: 'POST', cache: 'no-store', headers: { Accept: 'application/json', 'Accept-Language': language(), Authorization: 'Bearer ' + item.token, 'Idempotency-Key': item.key + '-photo' }, body: form,
    });
    if (response.ok) return { outcome: 'sent' };
    const data = (response.headers.get('Content-Type') || '').includes('json') ? await response.json().catch(() => null) : null;
    if (refusedForGood(response.status)) return { outcome: 'refused', error: refusal(data, response.status) };
    return { outcome: 'retry' };
  }

  /** Send every kept report that was not refused, one at a time, oldest first; `onSent(report)` for each
   *  that went through. Stops at the first network failure (the rest waits for the next try). Resolves to
   *  'done' (nothing left to send), 'offline' (the network failed), 'retry' (the server asked to be tried
   *  later: 5xx, 408, 429) or 'photo_waiting' (a report is in, its photo is not). */
  async function flush(onSent) {
    const run = async () => {
      const items = (await waiting()).filter((i) => !i.refused).sort((a, b) => (a.queued_at < b.queued_at ? -1 : 1));
      for (const item of items) {
        let result;
        try {
          result = await send(item);
        } catch (e) {
          return 'offline';
        }
        if (result.outcome === 'retry') return 'retry';
        if (onSent) onSent(result, item);
        if (result.outcome === 'photo_waiting') return 'photo_waiting';
      }
      return 'done';
    };
    if (scope.navigator && scope.navigator.locks) return scope.navigator.locks.request('gridcase-outbox', run);
    return run();
  }

  /** Send a refused photo again (`refusedPhoto` of a sent result), to read the server's refusal in the
   *  page's language now: the same as sendPhoto; a photo refused for what it is is refused again. */
  function askPhoto(refused) { return sendPhoto(refused, refused.reportId, refused.photoField); }

  async function forget(key) { await (await db()).delete('outbox', key); }

  scope.GridcaseOutbox = { add, waiting, sent, flush, forget, askPhoto };
}(self));
