/* The bell: the signed-in caller's in-app notifications, on the board and on the phone page.
 *
 * Fed from GET /escalation/v1/notifications (the rows the notifications outbox wrote for the caller's
 * unit, role or person: a grid worker's are their grid's and their own): read again when the live feed
 * brings a step (the page's `gc:step` event), when the network returns, and every 20 s. The count is the
 * unread ones; "mark all read" is POST /escalation/v1/notifications/read. When the user allows it (a
 * click on "desktop alerts" asks the browser), a new unread notification is also shown with the
 * browser's Notification API — through the page's service worker where it has one (a phone's browser
 * shows notifications only from there). A notification opens its case: the bell sends the page a
 * `gc:open-case` event with the case id, and the page shows it its own way (the board in its panel, the
 * phone at the task or report it belongs to).
 *
 * Without network nothing fails: the last count and list stay, and the next look after the network
 * returns tells. Every word comes from the page's catalogue (keys bell_*, notify_<event>).
 *
 * The page holds the elements: #bell (its button, with #bell-count) and #bell-panel (with #bell-list,
 * #bell-status, #bell-read-all, #bell-desktop, #bell-close).
 */
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  let newest = null; // the largest id seen: newer unread ones are announced on the desktop
  let timer = null;
  let loading = false;

  /** What a notification says, [words, case number or null]. */
  function titleParts(item) {
    const p = item.payload || {};
    const c = p.case || {};
    // a case returned to a lower level arrives there as `assigned`: its bell says it came back
    const event = item.event === 'assigned' && p.step && p.step.type === 'returned' ? 'returned' : item.event;
    return [gc.t('notify_' + event), c.number || null];
  }

  function title(item) {
    const [words, number] = titleParts(item);
    return words + (number ? ' · ' + number : '');
  }

  /** The title in the list: the case number in an element of its own that never breaks across lines
   *  (`.case-number`, gridcase.css), as a line would break it after its hyphen. */
  function titleElement(item) {
    const [words, number] = titleParts(item);
    return gc.el('span', {}, [words, number ? ' · ' : null, number ? gc.el('span', { class: 'case-number', text: number }) : null]);
  }

  function detail(item) {
    const p = item.payload || {};
    const parts = [gc.time(item.at)];
    if (p.step && p.step.note) parts.push(p.step.note);
    return parts.join(' — ');
  }

  /** Show `item` with the Notification API: through the service worker that controls the page when
   *  there is one (its notificationclick opens the page), else as a page notification. */
  async function showOne(item) {
    const options = { body: detail(item), tag: item.event_id, data: { case_id: item.case_id } };
    const registration = navigator.serviceWorker && navigator.serviceWorker.controller
      ? await navigator.serviceWorker.getRegistration() : null;
    if (registration && registration.showNotification) {
      await registration.showNotification(title(item), options);
      return;
    }
    const shown = new Notification(title(item), options);
    shown.onclick = () => { window.focus(); if (item.case_id) open(item.case_id); };
  }

  function announce(items) {
    if (!('Notification' in window) || Notification.permission !== 'granted' || newest === null) return;
    items.filter((i) => i.id > newest && !i.read).slice(0, 5).forEach((item) => {
      showOne(item).catch(() => { /* the browser would not show it: the bell still counts it */ });
    });
  }

  function open(caseId) {
    document.dispatchEvent(new CustomEvent('gc:open-case', { detail: caseId }));
  }

  function render(data) {
    const count = $('bell-count');
    count.textContent = String(data.unread);
    count.dataset.unread = String(data.unread);
    $('bell').setAttribute('aria-label', gc.t('bell_unread', { n: data.unread }));
    const list = $('bell-list');
    list.replaceChildren(...data.items.map((item) => gc.el('li', { class: item.read ? 'read' : 'unread', 'data-id': item.id }, [
      titleElement(item),
      gc.el('div', { class: 'muted small', text: detail(item) }),
      item.case_id ? gc.el('a', { href: '#case=' + item.case_id, text: gc.t('bell_open'),
        onclick: (e) => { e.preventDefault(); open(item.case_id); } }) : null,
    ])));
    $('bell-status').textContent = data.items.length ? '' : gc.t('bell_empty');
  }

  async function load() {
    if (loading || !gc.token()) return;
    loading = true;
    try {
      const result = await gc.api('GET', '/escalation/v1/notifications?limit=30');
      if (!result.ok) return;
      announce(result.data.items);
      newest = result.data.items.reduce((m, i) => Math.max(m, i.id), newest === null ? 0 : newest);
      render(result.data);
    } catch (e) {
      // offline: the last count stays, and the next look tells
    } finally {
      loading = false;
    }
  }

  function soon() {
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 300); // a burst of steps makes one look
  }

  function toggle(show) {
    const panel = $('bell-panel');
    panel.hidden = show === undefined ? !panel.hidden : !show;
    $('bell').setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) load();
  }

  async function readAll() {
    try {
      const result = await gc.api('POST', '/escalation/v1/notifications/read', { body: { all: true } });
      if (result.ok) await load();
      else $('bell-status').textContent = gc.problemText(result);
    } catch (e) {
      // offline: nothing is marked; the page's network badge says why
    }
  }

  async function desktop() {
    if (!('Notification' in window)) {
      $('bell-status').textContent = gc.t('bell_desktop_denied');
      return;
    }
    const answer = await Notification.requestPermission();
    $('bell-status').textContent = gc.t(answer === 'granted' ? 'bell_desktop_on' : 'bell_desktop_denied');
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('bell').addEventListener('click', () => toggle());
    $('bell-close').addEventListener('click', () => toggle(false));
    $('bell-read-all').addEventListener('click', readAll);
    $('bell-desktop').addEventListener('click', desktop);
    document.addEventListener('gc:step', soon);
    document.addEventListener('gc:language', load);
    window.addEventListener('online', soon);
    load();
    window.setInterval(load, 20000);
  });
}());
