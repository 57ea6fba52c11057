/* Early warnings (预警) on the board: the active items of the caller's area (GET /escalation/v1/warnings)
 * as a circle per item on the map — the rule's radius around the mean position of its reports, with its
 * count — and as a list beside the map. An item opens in the case panel with its reports (each opens its
 * case), its history and, for staff, acknowledge and close with a note
 * (POST /escalation/v1/warnings/{id}/actions). The list is read again when the live feed brings a new or
 * reopened case (the step that can raise or grow an item: the board's `gc:step` event), and every minute.
 */
(function () {
  'use strict';
  const ACTIVE = 'open,acknowledged';
  const STAFF = ['station', 'subcenter', 'command', 'admin'];
  const ALLOWED = { acknowledge: ['open'], close: ['open', 'acknowledged'] };
  const COLOURS = { open: '#b3141b', acknowledged: '#8a4b00' };
  let board = null; // {view, openCase, showPanel, caseNumber, categoryName, areaName}
  const items = new Map(); // id → item
  const circles = new Map(); // id → Leaflet circle
  let unlisted = 0; // active items beyond the page the list was read with (the oldest)
  const labels = new Map(); // id → its count, a tooltip on the circle's northern edge (the pins stay visible)
  let shown = null; // the id of the item in the panel
  let reloadTimer = null;

  const $ = (id) => document.getElementById(id);

  function title(item) {
    return board.categoryName(item.category) + ' · ' + gc.t('warning_count', { n: item.count });
  }

  function render() {
    const list = Array.from(items.values()).sort((a, b) => (a.opened_at < b.opened_at ? 1 : -1));
    // more active items than one page brings: the newest are listed, the count says how many there are
    $('warning-count').textContent = unlisted > 0 ? gc.t('count_listed_of', { n: list.length, total: list.length + unlisted })
      : gc.t('count_cases', { n: list.length });
    $('warning-list').replaceChildren(...(list.length ? list.map((item) => gc.el('li', { 'data-warning': item.id }, [
      gc.el('a', { href: '#warning-' + item.id, text: title(item), onclick: (e) => { e.preventDefault(); openItem(item.id); } }),
      gc.el('span', { class: 'state warning-' + item.status, text: gc.t('warning_status_' + item.status) }),
      gc.el('div', { class: 'muted small', text: gc.t('warning_kind_' + item.kind) + ' · ' + board.areaName(item.area_id)
        + ' · ' + gc.time(item.opened_at) }),
    ])) : [gc.el('li', { class: 'muted', text: gc.t('no_warnings') })]));
    drawCircles(list);
  }

  function drawCircles(list) {
    if (!board.view) return;
    const keep = new Set();
    list.forEach((item) => {
      if (!item.location || item.radius_m === null) return;
      keep.add(item.id);
      const at = [item.location.lat, item.location.lon];
      let circle = circles.get(item.id);
      if (!circle) {
        circle = L.circle(at, { radius: item.radius_m, weight: 3, fillOpacity: 0.18, className: 'warning-circle' }).addTo(board.view.map);
        circle.on('click', () => openItem(item.id));
        circles.set(item.id, circle);
        const label = L.tooltip({ permanent: true, interactive: true, direction: 'center',
          className: 'warning-count warning-count-' + item.id }).setLatLng(at).setContent('').addTo(board.view.map);
        label.on('click', () => openItem(item.id));
        labels.set(item.id, label);
      }
      circle.setLatLng(at);
      circle.setRadius(item.radius_m);
      circle.setStyle({ color: COLOURS[item.status], fillColor: COLOURS[item.status] });
      labels.get(item.id).setLatLng([item.location.lat + item.radius_m / 111195, item.location.lon])
        .setContent(gcAreas.text(String(item.count)));
    });
    circles.forEach((circle, id) => {
      if (keep.has(id)) return;
      circle.remove();
      labels.get(id).remove();
      circles.delete(id);
      labels.delete(id);
    });
  }

  async function load() {
    const result = await gc.api('GET', '/escalation/v1/warnings?status=' + ACTIVE + '&page_size=500').catch(() => null);
    if (!result || !result.ok) return;
    items.clear();
    result.data.items.forEach((item) => items.set(item.id, item));
    unlisted = Math.max(0, result.data.total - result.data.items.length);
    render();
    document.body.dataset.warnings = String(items.size);
    if (shown && items.has(shown)) renderItem(items.get(shown));
  }

  /** A new or reopened case may raise or grow an item: read the list again, once for a burst of steps. */
  function caseStep(step) {
    if (!step || (step.type !== 'opened' && step.type !== 'reopened')) return;
    window.clearTimeout(reloadTimer);
    reloadTimer = window.setTimeout(load, 800);
  }

  async function openItem(id, message) {
    const result = await gc.api('GET', '/escalation/v1/warnings/' + encodeURIComponent(id));
    if (!result.ok) {
      board.showPanel([gc.el('p', { class: 'error', role: 'alert', text: gc.problemText(result) })]);
      return;
    }
    const item = result.data;
    if (item.status === 'closed') items.delete(item.id);
    else items.set(item.id, item);
    render();
    shown = item.id;
    renderItem(item, message);
    const circle = circles.get(item.id);
    if (circle && board.view) board.view.map.fitBounds(circle.getBounds().pad(1.5), { animate: false, maxZoom: 17 });
  }

  function field(label, value) {
    return [gc.el('dt', { text: label }), gc.el('dd', { text: value === null || value === undefined || value === '' ? '—' : String(value) })];
  }

  function renderItem(item, message) {
    const claims = gc.claims() || {};
    const facts = gc.el('dl', { class: 'facts' }, [
      ...field(gc.t('warning_rule'), item.rule),
      ...field(gc.t('warning_kind'), gc.t('warning_kind_' + item.kind)),
      ...field(gc.t('category'), board.categoryName(item.category)),
      ...field(gc.t('warning_area'), board.areaName(item.area_id)),
      ...field(gc.t('warning_opened'), gc.time(item.opened_at)),
      ...field(gc.t('status'), gc.t('warning_status_' + item.status)),
      ...field(gc.t('warning_radius'), item.radius_m === null ? null : Math.round(item.radius_m) + ' m'),
    ]);
    const reports = gc.el('ol', { class: 'warning-reports' }, item.reports.map((id) => gc.el('li', {}, [
      gc.el('a', { href: '#case-' + id, text: board.caseNumber(id), onclick: (e) => { e.preventDefault(); shown = null; board.openCase(id); } }),
    ])));
    const history = gc.el('ol', { class: 'timeline' }, item.history.map((h) => gc.el('li', {}, [
      gc.el('div', { class: 'when', text: gc.time(h.at) + ' · ' + (h.actor === 'system' ? gc.t('actor_system') : h.actor) }),
      gc.el('strong', { text: gc.t('warning_step_' + h.action) }),
      h.note ? gc.el('span', { text: ' — ' + h.note }) : null,
    ])));
    const possible = STAFF.includes(claims.role) ? Object.keys(ALLOWED).filter((a) => ALLOWED[a].includes(item.status)) : [];
    board.showPanel([
      gc.el('h3', { class: 'case-title', id: 'warning-title' }, [gc.el('span', { text: gc.t('warning') + ' · ' + title(item) + ' ' }),
        gc.el('span', { class: 'state warning-' + item.status, text: gc.t('warning_status_' + item.status) })]),
      message ? gc.el('p', { class: 'notice ' + message.kind, role: 'alert', id: 'panel-message', text: message.text }) : null,
      facts,
      gc.el('h3', { text: gc.t('warning_reports') }), reports,
      gc.el('h3', { text: gc.t('actions') }),
      possible.length ? gc.el('div', { class: 'actions-row' }, possible.map((name) => gc.el('button', {
        type: 'button', class: name === 'close' ? 'secondary' : '', 'data-warning-action': name,
        text: gc.t('warning_action_' + name), onclick: () => actionForm(item, name),
      }))) : gc.el('p', { class: 'muted', text: gc.t('no_actions') }),
      gc.el('div', { id: 'warning-form' }),
      gc.el('h3', { text: gc.t('timeline') }), history,
    ]);
  }

  function actionForm(item, name) {
    const note = gc.el('textarea', { id: 'wf-note', name: 'note', rows: 2, required: true, maxlength: 2000 });
    const error = gc.el('p', { class: 'error', role: 'alert' });
    const form = gc.el('form', { class: 'card action-form', 'data-form': 'warning-' + name }, [
      gc.el('strong', { text: gc.t('warning_action_' + name) }),
      gc.el('div', {}, [gc.el('label', { for: 'wf-note', text: gc.t('field_note') }), note]), error,
      gc.el('div', { class: 'actions-row' }, [
        gc.el('button', { type: 'submit', text: gc.t('submit') }),
        gc.el('button', { type: 'button', class: 'secondary', text: gc.t('cancel'), onclick: () => $('warning-form').replaceChildren() }),
      ]),
    ]);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      form.querySelector('button[type=submit]').disabled = true;
      const result = await gc.api('POST', '/escalation/v1/warnings/' + encodeURIComponent(item.id) + '/actions',
        { body: { action: name, note: note.value.trim() } });
      if (result.ok) {
        await openItem(item.id, { kind: 'good', text: gc.t('action_done', { action: gc.t('warning_action_' + name) }) });
      } else if (result.status === 409) {
        await openItem(item.id, { kind: 'bad', text: gc.problemText(result) });
      } else {
        error.textContent = gc.problemText(result);
        form.querySelector('button[type=submit]').disabled = false;
      }
    });
    $('warning-form').replaceChildren(form);
    note.focus();
  }

  /** Called by the board once its map is drawn (``view`` may be null when the map failed). */
  function start(options) {
    board = options;
    document.addEventListener('gc:step', (e) => caseStep(e.detail)); // the live feed's steps, from the board
    document.addEventListener('gc:language', () => {
      render();
      if (shown && items.has(shown)) renderItem(items.get(shown));
    });
    load();
    window.setInterval(load, 60000);
  }

  /** The board opened a case in the panel: the panel no longer shows an item. */
  function panelTaken() { shown = null; }

  window.gcBoardWarnings = { start, panelTaken, load };
}());
