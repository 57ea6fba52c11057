/* The live feed, GET /escalation/v1/cases/events (Server-Sent Events), read with fetch so that the token
 * travels in the Authorization header, never in a URL.
 *
 * gcFeed.follow({onEvent, onState, lastEventId}) reads it for as long as the page lives, from
 * `lastEventId` when given (the id a list was read at), else from now: `onEvent({name, data, id})`
 * for each event (`hello`, `case`, `removed`, `reset`; `data` is the event's JSON text), awaited in
 * order; `onState('live' | 'reconnecting')`. The server ends a stream after a while: the next one
 * resumes at once with Last-Event-ID, so nothing is missed. An `onEvent` that answers `{resumeFrom: ID}`
 * has the feed opened again at once from that id (the wall reads recent history so). After a failure it
 * tries again after 1 s, doubling to 8 s; while the browser says it has no network it waits for the
 * network to return instead of trying. A 401 signs out (the token is gone or expired).
 */
(function () {
  'use strict';

  /** One event block ("event: case\nid: 42\ndata: {…}") as {name, data, id}. */
  function parseEvent(block) {
    const event = { name: 'message', data: '', id: null };
    block.split('\n').forEach((line) => {
      if (!line || line.startsWith(':')) return;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'event') event.name = value;
      else if (field === 'data') event.data += (event.data ? '\n' : '') + value;
      else if (field === 'id') event.id = value;
    });
    return event;
  }

  function networkBack() {
    return new Promise((resolve) => window.addEventListener('online', resolve, { once: true }));
  }

  async function follow(options) {
    const onEvent = options.onEvent || (() => {});
    const onState = options.onState || (() => {});
    let lastEventId = options.lastEventId === undefined ? null : options.lastEventId;
    let delay = 1000;
    for (;;) {
      if (!navigator.onLine) {
        onState('reconnecting');
        await networkBack();
      }
      try {
        const headers = { Accept: 'text/event-stream', 'Accept-Language': gc.lang === 'zh' ? 'zh-CN,zh;q=0.9' : 'en',
          Authorization: 'Bearer ' + gc.token() };
        if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
        const response = await fetch('/escalation/v1/cases/events', { headers, cache: 'no-store' });
        if (response.status === 401) { gc.setToken(null); window.location.reload(); return; }
        if (!response.ok || !response.body) throw new Error('HTTP ' + response.status);
        onState('live');
        delay = 1000;
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        let again = false;
        while (!again) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while (!again && (end = buffer.indexOf('\n\n')) >= 0) {
            const event = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event.id !== null) lastEventId = event.id;
            const answer = await onEvent(event);
            if (answer && answer.resumeFrom !== undefined) {
              lastEventId = answer.resumeFrom;
              again = true;
            }
          }
        }
        if (again) await reader.cancel();
        continue; // the stream ended (or is to be read again): resume at once with the last id
      } catch (e) {
        onState('reconnecting');
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 8000);
    }
  }

  window.gcFeed = { follow, parseEvent };
}());
