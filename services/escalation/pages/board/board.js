/* The command-center board: the open cases of the caller's area, live.
 *
 * The list comes from GET /escalation/v1/cases; changes come from the live feed
 * GET /escalation/v1/cases/events (Server-Sent Events, read with fetch so that the token travels in the
 * Authorization header, never in a URL). Each event carries the case as the list shows it: the board
 * replaces its copy; a `removed` event (the case was transferred or re-routed out of the caller's area)
 * drops it. The feed is resumed with Last-Event-ID after a drop or a server restart.
 * A case opens in the panel with its report, timeline and the actions the caller may take; an action is
 * sent with the ETag the panel was loaded with (If-Match), so a 412 means someone else acted first.
 * The search box finds a case by its number (GET /escalation/v1/cases/by-number/{number}) or by words
 * (?q=, closed cases too); /board/#case=NUMBER opens that case, and the open case's number is kept in the
 * address, so it can be shared. Reports awaiting acceptance (立案) are the "acceptance" queue; "mine" and
 * "unassigned" follow the named handler (承办人).
 */
(function () {
  'use strict';
  const OPEN_STATUSES = 'pending_acceptance,open,acknowledged,dispatched,verifying,rework,suspended';
  const ENDED = ['closed', 'refused', 'voided', 'merged'];
  const NUMBER = /^\d{8}-\d{6}$/;
  const REFUSAL_REASONS = ['not_city_matter', 'insufficient_information', 'already_fixed', 'duplicate', 'other'];
  const PHOTO_KINDS = ['before', 'after', 'verification'];
  const STATES = ['overdue', 'warned', 'pending', 'triage', 'suspended', 'on-time'];
  const ACTION_FIELDS = {
    acknowledge: ['note?'], resolve: ['note'], escalate: ['reason'], return: ['level', 'reason'],
    transfer: ['to', 'reason'], request_extension: ['amount', 'reason'], approve_extension: ['note?'],
    refuse_extension: ['reason'], suspend: ['reason'], approve_suspension: ['note?'],
    refuse_suspension: ['reason'], resume: ['note?'], reopen: ['reason'],
    accept: ['note?'], refuse: ['refusal', 'note?'], void: ['reason'], merge: ['into', 'note?'],
    set_severity: ['severity'], assign: ['assignee'],
    assign_department: ['department', 'role', 'note?'], feedback: ['outcome', 'note?', 'reason?'],
    urge: ['note', 'respond_within'], respond_urge: ['note'],
  };
  const URGE_TIMES = ['1 hours', '2 working_hours', '4 working_hours', '1 working_days'];
  let departments = {}; // id → {id, zh, en, serves}
  const cases = new Map(); // id → {case, at: Date.now() when received, due: ms or null, reported: ms, opened}
  const pins = new Map(); // id → Leaflet marker (in the cluster group)
  let categories = {};
  let areas = null;
  let view = null;
  let lastEventId = null; // where the feed starts: the id the list was read at
  let selected = null; // {id, etag, case}
  let me = {}; // the signed-in token's claims (read once: a new token reloads the page)
  let renderQueued = false;

  const $ = (id) => document.getElementById(id);

  // -- the state of a case ---------------------------------------------------------------------------

  /** The assignment of the signed-in department on a case (a department's board counts its own deadline). */
  function ownAssignment(c) {
    if (me.role !== 'department') return null;
    const mine = (c.departments || []).filter((d) => d.id === me.department);
    return mine.length ? mine[mine.length - 1] : null;
  }

  /** Seconds left (negative: late), from the deadline instant fixed when the case was received. */
  function timeLeft(entry) {
    return entry.due === null ? null : (entry.due - Date.now()) / 1000;
  }

  function departmentName(id) {
    const d = departments[id];
    return d ? (gc.lang === 'zh' ? d.zh : d.en) : id;
  }

  /** The case's time state (its badge and row colour): 'ended' for a case in a final status (closed,
   *  refused, voided, merged), whose clock has stopped, so it is never "on time" nor overdue; else
   *  pending, triage, suspended, overdue, warned or on-time. */
  function stateOf(entry) {
    const c = entry.case;
    if (ENDED.includes(c.status)) return 'ended';
    if (c.status === 'pending_acceptance') return c.overdue ? 'overdue' : 'pending';
    if (c.triage) return 'triage';
    if (c.status === 'suspended') return 'suspended';
    const left = timeLeft(entry);
    const own = ownAssignment(c);
    if (own ? own.overdue : (c.overdue || c.department_overdue)) return 'overdue';
    if (left !== null && left <= 0) return 'overdue';
    // the policy's warnings (a share of the level's limit used): reached on the server, or due by now
    if (c.warned !== null && c.warned !== undefined) return 'warned';
    if (c.next_warning && Date.parse(c.next_warning) <= Date.now()) return 'warned';
    return 'on-time';
  }

  function categoryName(code) {
    const c = categories[code];
    return c ? (gc.lang === 'zh' ? c.zh : c.en) : code;
  }

  /** A policy word (a severity, a reason) in the page's language where the catalogue has it, else as it is. */
  function word(prefix, value) {
    const key = prefix + value;
    const text = gc.t(key);
    return text === key ? value : text;
  }

  /** How many urges (督办) are on record: a row carries the count, a full case the list. */
  function urgeCount(c) {
    return Array.isArray(c.urges) ? c.urges.length : (c.urges || 0);
  }

  function lead(c) {
    return (c.departments || []).find((d) => d.role === 'lead' && (d.status === 'assigned' || d.status === 'acknowledged'));
  }

  /** The state's badge; an ended case's badge names its final status (closed, refused, voided, merged). */
  function badge(state, c) {
    if (state === 'ended') return gc.el('span', { class: 'state closed', 'data-status': c.status, text: gc.t('status_' + c.status) });
    return gc.el('span', { class: 'state ' + state, text: gc.t('state_' + state) });
  }

  // -- the list, the legend and the pins ----------------------------------------------------------------
  //
  // The list is virtualised: `order` holds the ids of the cases the filters let through, sorted; only the
  // rows in (and just around) the scrolled window exist in the DOM, between two spacer rows as tall as the
  // rows they stand for. A row is built once per version of its case (its key: updated_at, state, marks,
  // language) and reused while the key holds, so a live event rebuilds one row, not the list.

  const OVERSCAN = 12; // rows built above and below the window
  const BULK_LIMIT = 500; // at most this many cases in one bulk action
  let order = []; // ids shown, sorted
  let rowHeight = 0; // measured from a built row (px)
  const rowCache = new Map(); // id → {key, tr}
  const checked = new Set(); // ids ticked for a bulk action
  let cursor = null; // the keyboard's row (an id)
  let windowQueued = false;
  let labels = 0; // bumped when the categories' or departments' names arrive: rows are relabelled
  const stats = { rowsBuilt: 0, fullRenders: 0 }; // read by the tests and the benchmark
  window.gcBoardStats = stats;

  /** The filters' values, read once per pass over the cases. */
  function filterValues() {
    const f = $('filters').elements;
    return { level: f.level.value, category: f.category.value, status: f.status.value, unit: f.unit.value, queue: f.queue.value };
  }

  function matches(c, f) {
    if (f.level && String(c.level) !== f.level) return false;
    if (f.category && c.category !== f.category) return false;
    if (f.status && c.status !== f.status) return false;
    if (f.unit && !Object.values(c.areas || {}).some((a) => a && a.id === f.unit)) return false;
    return f.queue === 'all' || inQueue(c, f.queue);
  }

  /** The queues: reports awaiting acceptance, the caller's own cases, and those their unit holds unnamed. */
  function inQueue(c, queue) {
    if (queue === 'acceptance') return c.status === 'pending_acceptance';
    if (queue === 'mine') return !!c.assignee && c.assignee === me.sub;
    if (queue === 'unassigned') {
      if (c.assignee || c.status === 'pending_acceptance') return false;
      if (me.role === 'command') return c.level === 4;
      return !!me.area && !!c.owner && c.owner.area_id === me.area;
    }
    return true;
  }

  /** The sort the filters name: time left (the least first, none last; ties by id, as the server lists
   *  the rows), level (the highest first, then time left) or reported (the newest first). Keys are fixed
   *  instants, so an order stays right as time passes and one changed case is put back in place by a
   *  binary search. */
  function comparator() {
    const by = $('f-sort').value;
    const byDue = (a, b) => {
      if (a.due === null && b.due === null) {
        return a.opened < b.opened ? -1 : (a.opened > b.opened ? 1 : (a.case.id < b.case.id ? -1 : 1));
      }
      if (a.due === null) return 1;
      if (b.due === null) return -1;
      return a.due - b.due || (a.case.id < b.case.id ? -1 : 1);
    };
    if (by === 'level') return (a, b) => b.case.level - a.case.level || byDue(a, b);
    if (by === 'reported') return (a, b) => b.reported - a.reported || byDue(a, b);
    return byDue;
  }

  function sortOrder() {
    const compare = comparator();
    const shown = [];
    const f = filterValues();
    cases.forEach((entry) => { if (matches(entry.case, f)) shown.push(entry); });
    shown.sort(compare);
    order = shown.map((e) => e.case.id);
  }

  /** One case changed (a live event, an action): take it out of the order and put it back in place. */
  function reorderOne(id) {
    const i = order.indexOf(id);
    if (i >= 0) order.splice(i, 1);
    const entry = cases.get(id);
    if (!entry || !matches(entry.case, filterValues())) return false;
    const compare = comparator();
    let lo = 0; let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compare(cases.get(order[mid]), entry) <= 0) lo = mid + 1; else hi = mid;
    }
    order.splice(lo, 0, id);
    return true;
  }

  /** Everything again: filters changed, the list was reloaded, the language switched. */
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    window.requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  function render() {
    stats.fullRenders += 1;
    const first = !listPainted;
    sortOrder();
    recount();
    renderWindow();
    renderCounts();
    // the pins after the list's frame (10⁴ markers are made and clustered in chunks); the first time, once
    // the list is painted (renderWindow)
    if (!first) window.requestAnimationFrame(() => window.setTimeout(syncPins, 0));
  }

  /** One case changed: its place, its row (if in the window) and its pin; the counts in the same frame. */
  function applyOne(id) {
    const shown = reorderOne(id);
    recountOne(id, shown);
    syncPin(id);
    countsDirty = true;
    scheduleWindow();
  }

  let countsDirty = false;
  function scheduleWindow() {
    if (windowQueued) return;
    windowQueued = true;
    window.requestAnimationFrame(() => {
      windowQueued = false;
      renderWindow();
      if (countsDirty) { countsDirty = false; renderCounts(); }
    });
  }

  let counts = {}; // state → how many shown cases are in it
  const counted = new Map(); // id → the state a shown case was counted in

  function recount() {
    counts = {};
    counted.clear();
    order.forEach((id) => { const s = stateOf(cases.get(id)); counted.set(id, s); counts[s] = (counts[s] || 0) + 1; });
  }

  /** One case's part in the counts, after it changed: its old state out, its new one in (if shown). */
  function recountOne(id, shown) {
    const before = counted.get(id);
    if (before) { counts[before] -= 1; counted.delete(id); }
    if (shown) { const s = stateOf(cases.get(id)); counted.set(id, s); counts[s] = (counts[s] || 0) + 1; }
  }

  function renderCounts() {
    const listed = Math.max(order.length, expected || 0);
    // until the whole list is in, nothing is counted from what is drawn: the count is the first answer's
    // total (or "…" when a filter set the first screen aside), the states' counts wait, and the status
    // says the list is loading (rows past the first screen are blank until then)
    const waiting = !listLoaded;
    $('count').textContent = gc.t('count_cases', { n: waiting && expected === null ? '…' : listed });
    $('list-status').textContent = waiting ? gc.t('loading') : (listed ? '' : gc.t('no_cases'));
    $('legend').replaceChildren(...STATES.map((s) => gc.el('span', { class: 'state ' + s,
      text: gc.t('state_' + s) + ' ' + (waiting ? '…' : (counts[s] || 0)) })));
    $('case-table').setAttribute('aria-rowcount', String(listed + 1));
    const all = $('select-all');
    all.checked = checked.size > 0 && order.length > 0 && order.length <= checked.size && order.every((id) => checked.has(id));
    all.indeterminate = !all.checked && checked.size > 0 && order.some((id) => checked.has(id));
  }

  function rowKey(entry) {
    const c = entry.case;
    return [c.updated_at || c.revision, c.status, c.level, c.assignee, stateOf(entry), checked.has(c.id), selected && selected.id === c.id,
      gc.lang, c.urge_open, labels].join('|');
  }

  function buildRow(entry, index) {
    stats.rowsBuilt += 1;
    const c = entry.case;
    const state = stateOf(entry);
    const link = gc.el('a', { href: '#case=' + encodeURIComponent(c.number), text: c.number,
      onclick: (e) => { e.preventDefault(); cursor = c.id; openCase(c.id); } });
    const count = urgeCount(c);
    const urged = c.urge_open ? gc.el('span', { class: 'urge', title: gc.t('urged'), text: gc.t('urged') + ' ×' + count }) : null;
    const box = gc.el('input', { type: 'checkbox', class: 'pick', 'aria-label': gc.t('select_case', { number: c.number }) });
    box.checked = checked.has(c.id);
    box.addEventListener('change', () => { togglePick(c.id, box.checked); });
    const leadPart = lead(c);
    const tr = gc.el('tr', { class: 'row-' + state + (selected && selected.id === c.id ? ' selected' : ''), 'data-case': c.id }, [
      gc.el('td', { class: 'pick-cell' }, [box]),
      gc.el('td', { class: 'number-cell' }, [link, urged,
        gc.el('div', { class: 'muted small not-phone', text: categoryName(c.category) }),
        gc.el('div', { class: 'small phone-only', text: gc.t('status_' + c.status) + (state === 'ended' ? '' : ' · ' + gc.t('state_' + state)) })]),
      gc.el('td', { class: 'num time-left', text: gc.duration(timeLeft(entry)) }),
      gc.el('td', { class: 'state-cell' }, [badge(state, c)]),
      gc.el('td', { class: 'status-cell', 'data-status': c.status, text: gc.t('status_' + c.status) }),
      ownerCell(c, leadPart),
    ]);
    tr.setAttribute('aria-rowindex', String(index + 2));
    return tr;
  }

  /** The owner's cell: the owning area's name over its level (and a lead department's name), a line each;
   *  a line too long for the cell ends in "…" (board.css) and the cell's title holds both whole (on hover). */
  function ownerCell(c, leadPart) {
    const name = (c.owner && c.owner.area_name) || '';
    const role = gc.t('level_' + c.level) + (leadPart ? ' · ' + gc.t('role_lead') + ' ' + departmentName(leadPart.id) : '');
    return gc.el('td', { class: 'owner-cell', title: name + '\n' + role }, [
      gc.el('div', { class: 'owner-line', text: name }), gc.el('div', { class: 'owner-line muted small', text: role })]);
  }

  /** The list's two spacer rows (above and below the drawn window), made once and kept: a node that
   *  stays in place keeps what it holds, and the rows between them are never moved for a spacer. */
  const spacers = {};
  function spacer(height, name) {
    if (!spacers[name]) {
      spacers[name] = gc.el('tr', { class: 'spacer', 'data-spacer': name, 'aria-hidden': 'true' },
        [gc.el('td', { colspan: '6' })]);
    }
    spacers[name].firstChild.style.height = height + 'px';
    return spacers[name];
  }

  /** The rows in the scrolled window: built where their case changed, reused where it did not. */
  function renderWindow() {
    const wrap = $('table-wrap');
    const height = rowHeight || 40;
    const first = Math.max(0, Math.floor(wrap.scrollTop / height) - OVERSCAN);
    const last = Math.min(order.length, Math.ceil((wrap.scrollTop + (wrap.clientHeight || 600)) / height) + OVERSCAN);
    const keep = new Map();
    const rows = [];
    // a row rebuilt by a live event keeps the keyboard's focus if it had it
    const focusedRow = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest('#case-rows tr[data-case]') : null;
    for (let i = first; i < last; i += 1) {
      const id = order[i];
      const entry = cases.get(id);
      const key = rowKey(entry);
      let cached = rowCache.get(id);
      if (!cached || cached.key !== key) {
        cached = { key, tr: buildRow(entry, i) };
      } else {
        cached.tr.setAttribute('aria-rowindex', String(i + 2));
        const cell = cached.tr.querySelector('td.time-left');
        const text = gc.duration(timeLeft(entry));
        if (cell.textContent !== text) cell.textContent = text; // the time left counts down
      }
      cached.tr.classList.toggle('cursor', id === cursor);
      keep.set(id, cached);
      rows.push(cached.tr);
    }
    rowCache.clear();
    keep.forEach((v, k) => rowCache.set(k, v));
    const body = $('case-rows');
    const listed = Math.max(order.length, expected || 0); // the whole list's length, from the first screen on
    const wanted = [spacer(first * height, 'top'), ...rows, spacer((listed - last) * height, 'bottom')];
    // move only what moved: rows that left the window go first, so the rows that stay are not moved
    // (a moved node loses the keyboard's focus), then the new ones are put in their places
    const kept = new Set(wanted);
    Array.from(body.children).forEach((node) => { if (!kept.has(node)) node.remove(); });
    let at = body.firstChild;
    wanted.forEach((node) => {
      if (at === node) { at = at.nextSibling; return; }
      body.insertBefore(node, at);
    });
    // a focused row rebuilt by a live event, or moved by a new sort, gets the focus back
    const focusedId = focusedRow && focusedRow.dataset.case;
    if (focusedId && rowCache.has(focusedId)) {
      const tr = rowCache.get(focusedId).tr;
      const link = tr.querySelector('a');
      if (link && !tr.contains(document.activeElement)) link.focus({ preventScroll: true });
    }
    if (!rowHeight && rows.length) {
      rowHeight = rows[0].getBoundingClientRect().height || 40;
      if (rowHeight !== height) scheduleWindow();
    }
    if (!listPainted && (listLoaded || expected !== null)) {
      listPainted = true;
      // the list's frame goes out first; the pins (10⁴ markers clustered in chunks) are made after it
      window.requestAnimationFrame(() => window.setTimeout(() => {
        window.performance.mark('gc-list-paint');
        document.body.dataset.listPainted = 'true';
        if (listLoaded) syncPins(); // else when the whole list is in (render)
      }, 0));
    }
  }
  let listPainted = false;
  let listLoaded = false; // the whole list is in (not only the first screen)
  let expected = null; // while only the first screen is in: how many cases the whole list holds

  function togglePick(id, on) {
    if (on) checked.add(id); else checked.delete(id);
    renderBulk();
    scheduleWindow();
    countsDirty = true;
  }

  // -- the map's pins, clustered (leaflet.markercluster) ------------------------------------------------

  const STATE_RANK = ['overdue', 'warned', 'pending', 'triage', 'suspended', 'on-time'];
  let cluster = null;
  const icons = {};

  function icon(state, isSelected) {
    const key = state + (isSelected ? '-selected' : '');
    if (!icons[key]) {
      const size = isSelected ? 22 : 16;
      icons[key] = L.divIcon({ className: 'pin pin-' + state + (isSelected ? ' pin-selected' : ''), iconSize: [size, size] });
    }
    return icons[key];
  }

  function makeCluster() {
    cluster = L.markerClusterGroup({
      chunkedLoading: true, showCoverageOnHover: false, maxClusterRadius: 48, spiderfyOnMaxZoom: true,
      disableClusteringAtZoom: 17,
      iconCreateFunction: gcAreas.clusterIcon(STATE_RANK),
      chunkProgress: (done, total) => { if (done === total) mapReady(); },
    });
    view.map.addLayer(cluster);
  }

  let mapIsReady = false;
  function mapReady() {
    if (mapIsReady || !listLoaded) return;
    mapIsReady = true;
    window.requestAnimationFrame(() => window.setTimeout(() => {
      window.performance.mark('gc-map-ready');
      document.body.dataset.mapReady = 'true';
    }, 0));
  }

  function markerFor(entry) {
    const c = entry.case;
    const loc = c.report && c.report.location;
    if (!loc || loc.lat === null || loc.lon === null || loc.lat === undefined) return null;
    const state = stateOf(entry);
    const isSelected = !!(selected && selected.id === c.id);
    const marker = L.marker([loc.lat, loc.lon], { icon: icon(state, isSelected), state, selected: isSelected,
      title: c.number + ' · ' + categoryName(c.category), keyboard: false, riseOnHover: true });
    marker.on('click', () => { cursor = c.id; openCase(c.id); });
    return marker;
  }

  /** The pins of the shown cases: added and removed in bulk, restyled where a state changed. */
  function syncPins() {
    if (!view || !listLoaded) return; // not from the first screen: the whole list's pins at once
    if (!cluster) makeCluster();
    const wanted = new Set(order);
    const add = [];
    const drop = [];
    const restyled = [];
    pins.forEach((marker, id) => { if (!wanted.has(id)) { drop.push(marker); pins.delete(id); } });
    order.forEach((id) => {
      const entry = cases.get(id);
      const marker = pins.get(id);
      if (!marker) {
        const made = markerFor(entry);
        if (made) { pins.set(id, made); add.push(made); }
      } else if (restyle(marker, entry)) {
        restyled.push(marker);
      }
    });
    if (drop.length) cluster.removeLayers(drop);
    if (add.length) cluster.addLayers(add);
    else mapReady();
    if (restyled.length) cluster.refreshClusters(restyled);
  }

  /** A pin's look follows its case's state and the selection; true when it changed. */
  function restyle(marker, entry) {
    const state = stateOf(entry);
    const isSelected = !!(selected && selected.id === entry.case.id);
    if (marker.options.state === state && marker.options.selected === isSelected) return false;
    marker.options.state = state;
    marker.options.selected = isSelected;
    marker.setIcon(icon(state, isSelected));
    return true;
  }

  /** One case's pin after a live event: added, moved, restyled or dropped. */
  function syncPin(id) {
    if (!view || !cluster) return;
    const entry = cases.get(id);
    const marker = pins.get(id);
    const shown = entry && order.includes(id);
    if (!shown) {
      if (marker) { cluster.removeLayer(marker); pins.delete(id); }
      return;
    }
    const loc = entry.case.report && entry.case.report.location;
    if (marker && loc && (marker.getLatLng().lat !== loc.lat || marker.getLatLng().lng !== loc.lon)) {
      cluster.removeLayer(marker);
      pins.delete(id);
    } else if (marker) {
      if (restyle(marker, entry)) cluster.refreshClusters(marker);
      return;
    }
    const made = markerFor(entry);
    if (made) { pins.set(id, made); cluster.addLayer(made); }
  }

  /** Every 15 s: a pin whose case crossed a warning or its deadline changes colour. */
  function tickStates() {
    if (!cluster) return;
    const restyled = [];
    order.forEach((id) => { const m = pins.get(id); if (m && restyle(m, cases.get(id))) restyled.push(m); });
    if (restyled.length) cluster.refreshClusters(restyled);
  }

  /** A case as the board keeps it; `at`: when its answer came (one instant for a whole answer, so cases
   *  with one deadline are due at one instant, and sort by id as the server lists them). */
  function entryOf(c, at = Date.now()) {
    const own = ownAssignment(c);
    let due = null;
    if (own) due = own.deadline && own.status !== 'done' && own.status !== 'declined' ? Date.parse(own.deadline) : null;
    else if (c.time_left !== null && c.time_left !== undefined) due = at + c.time_left * 1000;
    const reported = Date.parse((c.report && c.report.reported_at) || c.opened_at) || 0;
    return { case: c, at, due, reported, opened: c.opened_at || (c.report && c.report.reported_at) || '' };
  }

  function upsert(c) {
    if (ENDED.includes(c.status)) cases.delete(c.id);
    else cases.set(c.id, entryOf(c));
  }

  /** A row of GET /escalation/v1/cases/rows as the case object the board keeps (shared with the wall). */
  const fromRow = gc.caseFromRow;

  /** True while the filters and the sort are the page's defaults (the order the server lists rows in). */
  function defaultView() {
    const f = filterValues();
    return $('f-sort').value === 'time_left' && f.queue === 'all' && !f.level && !f.category && !f.status && !f.unit;
  }

  /** The first screen, from first.js's first request (the cases with the least time left and how many
   *  there are): drawn while the whole list is still on its way, if it is not in yet and the list shows the
   *  default order. Until the whole list is in, the count is the answer's total and the legend waits. */
  async function showFirstScreen(started) {
    let result;
    try {
      result = await gc.api('GET', '/escalation/v1/cases/rows', { started });
    } catch (e) {
      return null; // offline: the whole list's request says so
    }
    if (!result.ok || listLoaded || me.role === 'department' || !defaultView()) return result;
    window.performance.mark('gc-rows-first');
    const { columns, rows, names, total } = result.data;
    const at = Date.now();
    rows.forEach((row) => { const c = fromRow(columns, row, names); cases.set(c.id, entryOf(c, at)); });
    expected = total;
    render();
    return result;
  }

  /** Every open case of the caller's area in one request (the list's columns only): the list, its counts
   *  and the map's pins. The first time, first.js's requests (started as the page's head was read) are
   *  used when they carried this token: the first screen is drawn from the first while this one comes
   *  (or is the whole list, when it held every case). */
  async function loadList() {
    const early = window.gcFirstRows;
    window.gcFirstRows = null;
    const mine = early && early.token === gc.token() && !listLoaded ? early : null;
    if (!mine) window.performance.mark('gc-rows-request');
    let started = mine ? mine.whole : undefined;
    let result = null;
    if (mine && mine.first) {
      const firstAnswer = showFirstScreen(mine.first);
      if ((await started.catch(() => undefined)) === null) { // the first page held every case: the whole list
        result = await firstAnswer;
        started = undefined;
      }
    }
    if (!result || !result.ok) result = await gc.api('GET', '/escalation/v1/cases/rows', { started });
    window.performance.mark('gc-rows-received');
    if (!result.ok) {
      $('list-status').textContent = gc.t('load_failed', { error: gc.problemText(result) });
      return;
    }
    const { columns, rows, names } = result.data;
    if (!listLoaded && lastEventId === null) lastEventId = String(result.data.last_event_id); // the feed goes on from here
    cases.clear();
    const at = Date.now();
    rows.forEach((row) => { const c = fromRow(columns, row, names); cases.set(c.id, entryOf(c, at)); });
    window.performance.mark('gc-rows-kept');
    listLoaded = true;
    expected = null;
    for (const id of Array.from(checked)) if (!cases.has(id)) checked.delete(id);
    renderBulk();
    render(); // at once, not in the next frame: this is the first paint (or the whole list after the first screen)
    window.performance.mark('gc-list-whole');
  }

  // -- the live feed ------------------------------------------------------------------------------------

  function setLive(state) {
    const live = $('live');
    live.dataset.state = state;
    live.textContent = gc.t('live_' + state);
  }

  /** Why a case left the board, from the `removed` event's type (the step that moved it), as the open panel
   *  says it: a department's board loses a case when its own part ends (done, or declined: 退单), whatever
   *  step of that outcome carried the event; another board when the case moved out of its area. */
  function removedMessage(type) {
    if (me.role === 'department') {
      return type === 'department_declined' ? 'case_removed_department_declined' : 'case_removed_department_done';
    }
    return type === 'rerouted' ? 'case_removed_rerouted' : 'case_removed_transferred';
  }

  async function handle(event) {
    if (event.name === 'hello' || event.name === 'reset') { // the server does not know where this board was
      await loadList();
      document.body.dataset.ready = 'true';
    } else if (event.name === 'case') {
      const { case: c, step } = JSON.parse(event.data);
      upsert(c);
      applyOne(c.id);
      document.dispatchEvent(new CustomEvent('gc:step', { detail: step })); // the bell looks for news
      if (selected && selected.id === c.id && step.actor !== me.sub) {
        $('panel-changed').hidden = false;
      }
    } else if (event.name === 'removed') {
      // the case left the caller's area (transferred, re-routed): off the board now, not at the next reload
      const { case_id: id, type } = JSON.parse(event.data);
      cases.delete(id);
      checked.delete(id);
      applyOne(id);
      renderBulk();
      if (selected && selected.id === id) {
        selected = null;
        showPanel([gc.el('p', { class: 'notice warn', role: 'alert', id: 'panel-removed', text: gc.t(removedMessage(type)) })]);
      }
    }
  }

  /** The live feed, read by the shared feed.js (resumed with Last-Event-ID, reconnecting by itself), from
   *  the id the list was read at (`GET /escalation/v1/cases/rows`), so the list does not wait for it. */
  function follow() {
    gcFeed.follow({
      lastEventId,
      onEvent: handle,
      onState: (state) => {
        setLive(state);
        if (state === 'live' && listLoaded) document.body.dataset.ready = 'true';
      },
    });
  }

  // -- the case panel -----------------------------------------------------------------------------------

  /** The units an extension may be asked in (the API's), and the amount each offers first. */
  const EXTENSION_UNITS = ['working_hours', 'working_days', 'hours', 'minutes'];
  const EXTENSION_DEFAULT = { working_hours: 4, working_days: 1, hours: 4, minutes: 30, seconds: 600 };

  /** A limit or extension {amount, unit} as words: "8 working hours", "8 工作小时"; null without one. */
  function limitText(limit) {
    return limit ? gc.t('limit_' + limit.unit, { n: Number(limit.amount) }) : null;
  }

  function field(label, value) {
    return [gc.el('dt', { text: label }), gc.el('dd', { text: value === null || value === undefined || value === '' ? '—' : String(value) })];
  }

  async function openCase(id, message, path) {
    gcBoardWarnings.panelTaken();
    const result = await gc.api('GET', path || '/escalation/v1/cases/' + encodeURIComponent(id));
    if (!result.ok) {
      showPanel([gc.el('p', { class: 'error', role: 'alert', id: 'panel-message', text: gc.problemText(result) })]);
      return;
    }
    const c = result.data;
    const previous = selected && selected.id;
    selected = { id: c.id, etag: result.headers.get('ETag'), case: c };
    cursor = c.id;
    window.history.replaceState(null, '', '#case=' + encodeURIComponent(c.number));
    const before = previous && previous !== c.id ? previous : null;
    if (!ENDED.includes(c.status) || cases.has(c.id)) upsert(c);
    if (before) applyOne(before); // its row and pin lose the selection
    applyOne(c.id);
    if (c.id !== previous) scrollToRow(c.id);
    renderPanel(c, message);
    const pin = pins.get(c.id);
    if (pin && view && cluster) {
      if (!view.map.getBounds().contains(pin.getLatLng())) view.map.panTo(pin.getLatLng());
    }
  }

  /** A case by the number people quote (a shared link /board/#case=NUMBER, or the search box). */
  function openByNumber(number) {
    return openCase(null, null, '/escalation/v1/cases/by-number/' + encodeURIComponent(number));
  }

  /** #case=NUMBER (a link people share) or #case=ID (a notification's link) opens that case. */
  function caseFromAddress() {
    const match = /(?:^|[#&])case=([^&]+)/.exec(window.location.hash);
    if (!match) return;
    const wanted = decodeURIComponent(match[1]);
    if (selected && (selected.case.number === wanted || selected.id === wanted)) return;
    if (NUMBER.test(wanted)) openByNumber(wanted);
    else openCase(wanted);
  }

  /** The search box: a case number opens that case; words list the cases that have them, closed ones too. */
  async function search(e) {
    e.preventDefault();
    const text = $('q').value.trim();
    if (!text) return;
    if (NUMBER.test(text)) {
      await openByNumber(text);
      return;
    }
    gcBoardWarnings.panelTaken();
    const result = await gc.api('GET', '/escalation/v1/cases?page_size=50&q=' + encodeURIComponent(text));
    if (!result.ok) {
      showPanel([gc.el('p', { class: 'error', role: 'alert', text: gc.problemText(result) })]);
      return;
    }
    const found = result.data.items;
    showPanel([
      gc.el('h3', { text: gc.t('search_results', { n: result.data.total, q: text }) }),
      found.length ? gc.el('ul', { class: 'results', id: 'search-results' }, found.map((c) => gc.el('li', {}, [
        gc.el('a', { href: '#case=' + encodeURIComponent(c.number), text: c.number,
          onclick: (e) => { e.preventDefault(); openByNumber(c.number); } }),
        gc.el('span', { class: 'muted small', text: ' ' + gc.t('status_' + c.status) + ' · ' + categoryName(c.category) }),
        gc.el('div', { class: 'small', text: (c.report && c.report.description) || '' }),
      ]))) : gc.el('p', { class: 'muted', text: gc.t('search_none') }),
    ]);
  }

  /** Who the case waits for when the caller cannot act on it. */
  function waitingFor(c) {
    if (c.status === 'pending_acceptance') return gc.t('waiting_acceptance');
    if (c.verifier) return gc.t('waiting_verification', { level: gc.t('level_' + c.verifier.level) });
    if (ENDED.includes(c.status)) return '';
    return gc.t('waiting_owner', { owner: (c.owner && c.owner.area_name) || '', level: gc.t('level_' + c.level) });
  }

  function showPanel(children) {
    $('panel-empty').hidden = true;
    const body = $('panel-body');
    body.hidden = false;
    body.replaceChildren(...children.filter(Boolean));
    revealPanel();
  }

  function renderPanel(c, message) {
    const entry = cases.get(c.id) || { case: c, at: Date.now() };
    const state = stateOf(entry);
    const report = c.report || {};
    const loc = report.location || {};
    const facts = gc.el('dl', { class: 'facts' }, [
      ...field(gc.t('category'), categoryName(c.category)),
      ...field(gc.t('severity'), word('severity_', c.severity)),
      ...field(gc.t('status'), gc.t('status_' + c.status)),
      ...field(gc.t('level'), gc.t('level_' + c.level)),
      ...field(gc.t('owner'), c.owner && c.owner.area_name),
      ...field(gc.t('deadline'), gc.time(c.deadline)),
      ...field(gc.t('time_left'), gc.duration(c.time_left)),
      ...field(gc.t('limit'), limitText(c.limit)),
      ...(c.pending_extension ? field(gc.t('pending_extension'), limitText(c.pending_extension.amount)) : []),
      ...field(gc.t('reworks'), c.reworks),
      ...field(gc.t('assignee'), c.assignee),
    ]);
    const merged = c.merged_into ? gc.el('p', { class: 'notice' }, [
      gc.el('span', { text: gc.t('merged_into') + ' ' }),
      gc.el('a', { href: '#', text: gc.t('open_case'), onclick: (e) => { e.preventDefault(); openCase(c.merged_into.id); } }),
    ]) : null;
    const triage = c.triage ? gc.el('p', { class: 'notice warn', text: gc.t('triage_reason_' + (c.triage_reason || 'no_grid'))
      + (c.candidates && c.candidates.length ? ' · ' + gc.t('candidates') + ': ' + c.candidates.map((x) => x.id + ' (' + Math.round(x.distance_m) + ' m)').join(', ') : '') }) : null;
    const reportBlock = gc.el('div', {}, [
      gc.el('h3', { text: gc.t('report') }),
      gc.el('p', { class: 'description', text: report.description || '—' }),
      gc.el('dl', { class: 'facts' }, [
        ...field(gc.t('reported_at'), gc.time(report.reported_at)),
        ...field(gc.t('reporter'), report.reporter),
        ...field(gc.t('location'), loc.lat !== null && loc.lat !== undefined ? loc.lat.toFixed(5) + ', ' + loc.lon.toFixed(5) : null),
      ]),
    ]);
    const photos = gc.el('div', { class: 'photos', id: 'photos' });
    loadPhotos(photos, c);
    const handlers = (c.departments || []).length ? gc.el('div', {}, [
      gc.el('h3', { text: gc.t('departments') }),
      gc.el('div', { class: 'table-wrap' }, [gc.el('table', { class: 'departments' }, [
        gc.el('thead', {}, [gc.el('tr', {}, ['department', 'dept_role', 'status', 'deadline'].map((k) => gc.el('th', { scope: 'col', text: gc.t(k) })))]),
        gc.el('tbody', {}, c.departments.map((d) => gc.el('tr', { class: d.overdue ? 'row-overdue' : '', 'data-department': d.id }, [
          gc.el('td', { text: d.name ? (gc.lang === 'zh' ? d.name : departmentName(d.id)) : departmentName(d.id) }),
          gc.el('td', { text: gc.t('role_' + d.role) }),
          gc.el('td', {}, [gc.el('span', { text: gc.t('dept_status_' + d.status) }),
            d.overdue ? gc.el('span', { class: 'state overdue', text: ' ' + gc.t('state_overdue') }) : null,
            d.reason ? gc.el('div', { class: 'muted small', text: d.reason }) : null]),
          gc.el('td', { text: gc.time(d.deadline) }),
        ]))),
      ])]),
    ]) : null;
    const timeline = gc.el('ol', { class: 'timeline' }, (c.timeline || []).map((s) => gc.el('li', {}, [
      gc.el('div', { class: 'when', text: gc.time(s.at) + ' · ' + (s.actor === 'system' ? gc.t('actor_system') : s.actor) + ' · ' + gc.t('level_' + s.level) }),
      gc.el('strong', { text: gc.t('step_' + s.type) }),
      s.note ? gc.el('span', { text: ' — ' + s.note }) : null,
    ])));
    const actions = gc.el('div', { class: 'actions-row' }, (c.actions || []).map((name) => gc.el('button', {
      type: 'button', class: name === 'acknowledge' || name === 'resolve' ? '' : 'secondary', 'data-action': name,
      text: gc.t('action_' + name), onclick: () => actionForm(name),
    })));
    showPanel([
      gc.el('h3', { class: 'case-title' }, [gc.el('span', { class: 'case-number', text: c.number }), ' ', badge(state, c),
        gc.el('a', { href: '#case=' + encodeURIComponent(c.number), class: 'small', id: 'case-link', text: gc.t('case_link') })]),
      message ? gc.el('p', { class: 'notice ' + message.kind, role: 'alert', id: 'panel-message', text: message.text }) : null,
      gc.el('p', { class: 'notice warn', id: 'panel-changed', hidden: true }, [
        gc.el('span', { text: gc.t('changed_elsewhere') + ' ' }),
        gc.el('button', { type: 'button', class: 'secondary', text: gc.t('reload'), onclick: () => openCase(c.id) }),
      ]),
      triage, merged, facts, handlers, urgesBlock(c), reportBlock, photos,
      gc.el('h3', { text: gc.t('actions') }),
      c.actions && c.actions.length ? actions : gc.el('p', { class: 'muted', id: 'no-actions', text: (gc.t('no_actions') + ' ' + waitingFor(c)).trim() }),
      c.can_verify ? verifyForm(c) : null,
      gc.el('div', { id: 'action-form' }),
      gc.el('h3', { text: gc.t('timeline') }),
      timeline,
    ]);
  }

  /** 督办 on record: each urge, who it urged, by when an answer is due, and the answer. */
  function urgesBlock(c) {
    if (!(c.urges || []).length) return null;
    return gc.el('div', { class: 'urges' }, [
      gc.el('h3', { text: gc.t('urges') }),
      gc.el('ol', { class: 'timeline' }, c.urges.map((u) => gc.el('li', { class: u.overdue ? 'late' : '' }, [
        gc.el('div', { class: 'when', text: gc.time(u.at) + ' · ' + u.by + ' → ' + (departments[u.urged] ? departmentName(u.urged) : u.urged) }),
        gc.el('span', { text: u.note }),
        gc.el('div', { class: 'muted small', text: u.answered_at ? gc.t('urge_answered', { at: gc.time(u.answered_at) }) + ' — ' + u.answer
          : gc.t('urge_due', { at: gc.time(u.due) }) + (u.overdue ? ' · ' + gc.t('state_overdue') : '') }),
      ]))),
    ]);
  }

  /** The report's photos, from intake (GET /intake/v1/reports/{id}/photos: a case and its report share
   *  one id), as thumbnails fetched with the token, before and after side by side (and the on-site
   *  check's); nothing where intake keeps no photos. */
  async function loadPhotos(container, c) {
    let listed = c.photos || (c.report && c.report.photos);
    if (!listed) {
      const result = await gc.api('GET', '/intake/v1/reports/' + encodeURIComponent(c.id) + '/photos').catch(() => null);
      listed = result && result.ok ? (Array.isArray(result.data) ? result.data : result.data.items || []) : [];
    }
    if (!listed.length) return;
    container.before(gc.el('h3', { text: gc.t('photos') }));
    const kinds = PHOTO_KINDS.filter((k) => k !== 'verification' || listed.some((p) => p.kind === k));
    kinds.forEach((kind) => {
      const column = gc.el('figure', { class: 'photo-kind', 'data-kind': kind }, [gc.el('figcaption', { text: gc.t('photos_' + kind) })]);
      container.append(column);
      const mine = listed.filter((p) => (p.kind || 'before') === kind);
      if (!mine.length) column.append(gc.el('p', { class: 'muted small', text: '—' }));
      mine.forEach((p) => loadPhoto(column, p, kind));
    });
  }

  async function loadPhoto(container, photo, kind) {
    const url = typeof photo === 'string' ? photo : (photo.thumbnail_url || photo.url);
    if (!url) return;
    const result = await gc.api('GET', url, { raw: true, accept: 'image/*' });
    if (result.ok) container.append(gc.el('img', { src: URL.createObjectURL(result.data), alt: gc.t('photos_' + kind), class: 'photo' }));
  }

  /** The on-site check (核查), where the caller is its verifier (a station checks its grid worker's own fix):
   *  sent to intake, which takes verifications. */
  function verifyForm(c) {
    const note = gc.el('textarea', { id: 'verify-note', name: 'note', rows: 2, maxlength: 2000 });
    const error = gc.el('p', { class: 'error', role: 'alert' });
    const form = gc.el('form', { class: 'card action-form', 'data-form': 'verify' }, [
      gc.el('strong', { text: gc.t('verify_heading') }),
      gc.el('label', { for: 'verify-note', text: gc.t('field_note') }), note, error,
      gc.el('div', { class: 'actions-row' }, [
        gc.el('button', { type: 'submit', value: 'true', text: gc.t('verify_passed') }),
        gc.el('button', { type: 'submit', value: 'false', class: 'danger', text: gc.t('verify_failed') }),
      ]),
    ]);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const passed = e.submitter ? e.submitter.value === 'true' : true;
      const result = await gc.api('POST', '/intake/v1/cases/' + encodeURIComponent(c.id) + '/verification',
        { body: { passed, note: note.value.trim() } });
      if (result.ok) {
        form.replaceChildren(gc.el('p', { class: 'notice good', role: 'status', id: 'verify-done', text: gc.t('verify_done') }));
      } else {
        error.textContent = gc.problemText(result);
      }
    });
    return form;
  }

  function input(name, label, control) {
    const id = 'af-' + name;
    control.id = id;
    control.name = name;
    return gc.el('div', {}, [gc.el('label', { for: id, text: label }), control]);
  }

  function actionForm(name) {
    const c = selected.case;
    const parts = ACTION_FIELDS[name].map((spec) => {
      const optional = spec.endsWith('?');
      const key = spec.replace('?', '');
      if (key === 'level') {
        const select = gc.el('select', { required: true }, [1, 2, 3].filter((n) => n < c.level)
          .map((n) => gc.el('option', { value: n, text: gc.t('level_' + n) })));
        return input(key, gc.t('field_level'), select);
      }
      if (key === 'amount') {
        // the limit's own unit first and chosen: a working-hours limit is extended in working hours
        const own = (c.limit && c.limit.unit) || 'hours';
        const units = [own, ...EXTENSION_UNITS.filter((u) => u !== own)];
        const unit = gc.el('select', {}, units.map((u) => gc.el('option', { value: u, text: gc.t('unit_' + u + '_name') })));
        unit.value = own;
        return gc.el('div', { class: 'row' }, [
          input('amount', gc.t('field_amount'), gc.el('input', { type: 'number', min: '0.1', step: '0.1', value: String(EXTENSION_DEFAULT[own] || 4), required: true })),
          input('unit', gc.t('field_unit'), unit),
        ]);
      }
      if (key === 'refusal') {
        return input('reason', gc.t('field_refusal'), gc.el('select', { required: true }, REFUSAL_REASONS
          .map((r) => gc.el('option', { value: r, text: gc.t('refusal_' + r) }))));
      }
      if (key === 'into') {
        return input('into', gc.t('field_into'), gc.el('input', { type: 'text', required: true, autocomplete: 'off', placeholder: '20260105-000042' }));
      }
      if (key === 'severity') {
        const known = (categories[c.category] && categories[c.category].severities) || ['normal', 'urgent'];
        const select = gc.el('select', { required: true }, known.map((s) => gc.el('option', { value: s, text: word('severity_', s) })));
        select.value = c.severity;
        return input('severity', gc.t('severity'), select);
      }
      if (key === 'assignee') {
        const people = gc.el('datalist', { id: 'af-assignee-options' }, (c.assignable || []).map((u) => gc.el('option', { value: u })));
        return gc.el('div', {}, [input('assignee', gc.t('field_assignee'), gc.el('input', {
          type: 'text', list: 'af-assignee-options', autocomplete: 'off', value: me.sub || '' })), people,
        gc.el('p', { class: 'muted small', text: gc.t('assignee_hint') })]);
      }
      if (key === 'department') {
        const options = Object.values(departments).map((d) => gc.el('option', { value: d.id, text: departmentName(d.id) }));
        return input(key, gc.t('department'), gc.el('select', { required: true }, options));
      }
      if (key === 'respond_within') {
        return input(key, gc.t('field_respond_within'), gc.el('select', {}, URGE_TIMES.map((v) => gc.el('option', { value: v, text: gc.t('within_' + v.replace(' ', '_')) }))));
      }
      if (key === 'role' || key === 'outcome') {
        const values = key === 'role' ? ['lead', 'co'] : ['done', 'declined'];
        return input(key, gc.t('field_' + key), gc.el('select', { required: true }, values.map((v) => gc.el('option', { value: v, text: gc.t(key + '_' + v) }))));
      }
      if (key === 'to') {
        const list = gc.el('datalist', { id: 'af-to-options' }, (areas ? areas.grids : []).map((f) => gc.el('option', { value: f.properties.id, text: f.properties.name })));
        return gc.el('div', {}, [input('to', gc.t('field_to'), gc.el('input', { type: 'text', list: 'af-to-options', required: true, autocomplete: 'off' })), list]);
      }
      return input(key, gc.t('field_' + key), gc.el('textarea', { rows: 2, required: !optional, maxlength: 2000 }));
    });
    const error = gc.el('p', { class: 'error', role: 'alert' });
    const form = gc.el('form', { class: 'card action-form', 'data-form': name }, [
      gc.el('strong', { text: gc.t('action_' + name) }), ...parts, error,
      gc.el('div', { class: 'actions-row' }, [
        gc.el('button', { type: 'submit', text: gc.t('submit') }),
        gc.el('button', { type: 'button', class: 'secondary', text: gc.t('cancel'), onclick: () => $('action-form').replaceChildren() }),
      ]),
    ]);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { action: name };
      const el = form.elements;
      ['note', 'reason', 'to', 'severity', 'department', 'role', 'outcome', 'respond_within'].forEach((k) => { if (el[k] && el[k].value.trim()) body[k] = el[k].value.trim(); });
      if (el.level) body.level = Number(el.level.value);
      if (el.amount) body.amount = { amount: Number(el.amount.value), unit: el.unit.value };
      if (el.assignee) body.assignee = el.assignee.value.trim() || null;
      form.querySelector('button[type=submit]').disabled = true;
      if (el.into) {
        const target = el.into.value.trim();
        if (NUMBER.test(target)) {
          const found = await gc.api('GET', '/escalation/v1/cases/by-number/' + encodeURIComponent(target));
          if (!found.ok) {
            error.textContent = gc.t('no_such_case', { number: target });
            form.querySelector('button[type=submit]').disabled = false;
            return;
          }
          body.into = found.data.id;
        } else {
          body.into = target;
        }
      }
      const result = await gc.api('POST', '/escalation/v1/cases/' + encodeURIComponent(c.id) + '/actions',
        { body, headers: { 'If-Match': selected.etag } });
      if (result.status === 412) {
        await openCase(c.id, { kind: 'bad', text: gc.t('conflict') });
      } else if (result.ok) {
        if (!selected || selected.id !== c.id) return; // the case left the board meanwhile (its removed event said why)
        selected.etag = result.headers.get('ETag');
        upsert(result.data);
        applyOne(result.data.id);
        selected.case = result.data;
        renderPanel(result.data, { kind: 'good', text: gc.t('action_done', { action: gc.t('action_' + name) }) });
      } else {
        error.textContent = gc.problemText(result);
        form.querySelector('button[type=submit]').disabled = false;
      }
    });
    $('action-form').replaceChildren(form);
    const first = form.querySelector('textarea, input, select');
    if (first) first.focus();
  }

  // -- the panel in view, bulk actions and the keyboard ---------------------------------------------------

  /** Wherever the panel sits, a case opened in it is seen: a drawer over the right of the page between
   *  900 and 1400 px (it would be under the list and the map there), its own column from 1400 px, and
   *  scrolled to on a phone. */
  function revealPanel() {
    const panel = $('panel');
    panel.classList.add('open');
    $('panel-close').hidden = false;
    panel.scrollTop = 0;
    const box = panel.getBoundingClientRect();
    if (box.top < 0 || box.top > window.innerHeight - 80) panel.scrollIntoView({ block: 'start' });
  }

  function closePanel() {
    const panel = $('panel');
    panel.classList.remove('open');
    $('panel-close').hidden = true;
    const was = selected && selected.id;
    selected = null;
    $('panel-body').hidden = true;
    $('panel-empty').hidden = false;
    if (was) {
      applyOne(was);
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
      focusRow(was);
    }
  }

  function renderBulk() {
    const n = checked.size;
    $('bulk').hidden = n === 0;
    $('bulk-count').textContent = gc.t('bulk_selected', { n });
  }

  /** One action on every ticked case, four at a time: each case is read for its ETag and the actions
   *  the caller may take on it, and acted on with If-Match; those where it is not offered are skipped. */
  async function bulkAct(action, args) {
    const ids = Array.from(checked).slice(0, BULK_LIMIT);
    const status = $('bulk-status');
    const buttons = $('bulk').querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    status.textContent = gc.t('bulk_working', { n: ids.length });
    const done = []; const skipped = []; const failed = [];
    let next = 0;
    async function worker() {
      while (next < ids.length) {
        const id = ids[next]; next += 1;
        const entry = cases.get(id);
        const number = entry ? entry.case.number : id.slice(0, 8);
        const read = await gc.api('GET', '/escalation/v1/cases/' + encodeURIComponent(id));
        if (!read.ok) { failed.push(number + ' (' + gc.problemText(read) + ')'); continue; }
        if (!(read.data.actions || []).includes(action)) { skipped.push(number); continue; }
        const result = await gc.api('POST', '/escalation/v1/cases/' + encodeURIComponent(id) + '/actions',
          { body: Object.assign({ action }, args), headers: { 'If-Match': read.headers.get('ETag') } });
        if (result.ok) {
          done.push(id);
          upsert(result.data);
          applyOne(id);
        } else {
          failed.push(number + ' (' + (result.status === 412 ? gc.t('conflict') : gc.problemText(result)) + ')');
        }
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()]);
    done.forEach((id) => checked.delete(id));
    buttons.forEach((b) => { b.disabled = false; });
    const parts = [gc.t('bulk_done', { action: gc.t('action_' + action), n: done.length, of: ids.length })];
    if (skipped.length) parts.push(gc.t('bulk_skipped', { n: skipped.length, numbers: skipped.slice(0, 5).join(', ') }));
    if (failed.length) parts.push(gc.t('bulk_failed', { n: failed.length, numbers: failed.slice(0, 5).join('; ') }));
    status.textContent = parts.join(' ');
    renderBulk();
    scheduleWindow();
    countsDirty = true;
  }

  function selectAllShown(on) {
    if (on) order.slice(0, BULK_LIMIT).forEach((id) => checked.add(id));
    else order.forEach((id) => checked.delete(id));
    renderBulk();
    rowCache.clear();
    scheduleWindow();
    countsDirty = true;
  }

  /** Scroll the list so the row of ``id`` is in view (a case opened by its number or from a link may sit
   *  far down a long list, whose rows out of view are not drawn). Returns whether it is listed. */
  function scrollToRow(id) {
    const i = order.indexOf(id);
    if (i < 0) return false;
    const wrap = $('table-wrap');
    const height = rowHeight || 40;
    const head = $('case-table').tHead.getBoundingClientRect().height;
    const top = i * height;
    if (top < wrap.scrollTop) wrap.scrollTop = top;
    else if (top + height + head > wrap.scrollTop + wrap.clientHeight) wrap.scrollTop = top + height + head - wrap.clientHeight;
    renderWindow();
    return true;
  }

  /** Scroll the list so the row of ``id`` is in view, and focus its link. */
  function focusRow(id) {
    if (!scrollToRow(id)) return;
    const row = rowCache.get(id);
    if (row) {
      const link = row.tr.querySelector('a');
      link.focus({ preventScroll: true });
      row.tr.scrollIntoView({ block: 'nearest' });
    }
  }

  function moveCursor(step) {
    if (!order.length) return;
    let i = cursor === null ? -1 : order.indexOf(cursor);
    i = i < 0 ? (step > 0 ? 0 : order.length - 1) : Math.min(order.length - 1, Math.max(0, i + step));
    cursor = order[i];
    focusRow(cursor);
  }

  /** The keys (listed on the page, #keys): j/↓ next case, k/↑ previous, Enter/o open, x tick for a bulk
   *  action, a acknowledge (the ticked cases, else the open one), 1–9 the open case's n-th action, / search,
   *  Esc close the form or the panel, ? the list of keys. Not while typing in a field. */
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target;
    const typing = target && (/^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName) || target.isContentEditable);
    if (e.key === 'Escape') {
      if ($('action-form') && $('action-form').childElementCount) { $('action-form').replaceChildren(); e.preventDefault(); return; }
      if ($('panel').classList.contains('open')) { closePanel(); e.preventDefault(); }
      return;
    }
    if (typing) return;
    const inList = target === document.body || (target.closest && target.closest('#cases'));
    const key = e.key;
    if (key === 'j' || (key === 'ArrowDown' && inList)) moveCursor(1);
    else if (key === 'k' || (key === 'ArrowUp' && inList)) moveCursor(-1);
    else if (key === 'o' || (key === 'Enter' && inList && target.tagName !== 'A' && target.tagName !== 'BUTTON')) { if (cursor) openCase(cursor); }
    else if (key === 'x') { if (cursor) togglePick(cursor, !checked.has(cursor)); }
    else if (key === 'a') {
      if (checked.size) bulkAct('acknowledge', {});
      else if (selected && document.querySelector('#panel-body button[data-action=acknowledge]')) actionForm('acknowledge');
    } else if (/^[1-9]$/.test(key)) {
      const button = document.querySelectorAll('#panel-body button[data-action]')[Number(key) - 1];
      if (button) button.click();
    } else if (key === '/') $('q').focus();
    else if (key === '?') { $('keys').open = !$('keys').open; }
    else return;
    e.preventDefault();
  }

  function wireShift() {
    document.addEventListener('keydown', onKey);
    $('table-wrap').addEventListener('scroll', scheduleWindow, { passive: true });
    // a row reached by Tab (or focused any other way) is where the keys go on from
    $('case-rows').addEventListener('focusin', (e) => {
      const tr = e.target.closest && e.target.closest('tr[data-case]');
      if (!tr || tr.dataset.case === cursor) return;
      $('case-rows').querySelectorAll('tr.cursor').forEach((row) => row.classList.remove('cursor'));
      cursor = tr.dataset.case;
      tr.classList.add('cursor'); // the row's own node: a click under way still lands on it
    });
    window.addEventListener('resize', scheduleWindow);
    $('select-all').addEventListener('change', (e) => selectAllShown(e.target.checked));
    $('bulk-acknowledge').addEventListener('click', () => bulkAct('acknowledge', {}));
    $('bulk-assign-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const who = $('bulk-assignee').value.trim();
      bulkAct('assign', { assignee: who || null });
    });
    $('bulk-clear').addEventListener('click', () => { checked.clear(); renderBulk(); rowCache.clear(); scheduleWindow(); countsDirty = true; $('bulk-status').textContent = ''; });
    $('panel-close').addEventListener('click', closePanel);
  }

  // -- start ----------------------------------------------------------------------------------------------

  async function loadDepartments() {
    const result = await gc.api('GET', '/dispatch/v1/departments');
    if (!result.ok) return;
    result.data.departments.forEach((d) => { departments[d.id] = d; });
    labels += 1;
    scheduleWindow();
  }

  async function loadCategories() {
    const result = await gc.api('GET', '/intake/v1/categories');
    if (!result.ok) return;
    result.data.forEach((c) => { categories[c.code] = c; });
    fillCategories();
    labels += 1;
    scheduleWindow();
  }

  function fillCategories() {
    const select = $('f-category');
    const value = select.value;
    select.replaceChildren(select.options[0], ...Object.values(categories).map((c) => gc.el('option', { value: c.code, text: categoryName(c.code) })));
    select.value = value;
  }

  function fillUnits(claims) {
    const select = $('f-unit');
    let units = [];
    if (claims.role === 'station') units = areas.grids;
    else units = areas.outlines.length ? areas.outlines : areas.grids;
    select.append(...units.map((f) => gc.el('option', { value: f.properties.id, text: f.properties.name })));
  }

  async function start(claims) {
    me = claims || gc.claims() || {};
    setLive('connecting');
    wireShift();
    $('filters').addEventListener('change', () => {
      if (!listLoaded) { cases.clear(); expected = null; } // the first screen is the default view's only
      rowCache.clear();
      $('table-wrap').scrollTop = 0;
      scheduleRender();
    });
    $('search').addEventListener('submit', search);
    window.addEventListener('hashchange', caseFromAddress);
    document.addEventListener('gc:language', () => {
      fillCategories();
      setLive($('live').dataset.state);
      scheduleRender();
      if (selected) {
        renderPanel(selected.case);
        openCase(selected.id).catch(() => {}); // the server's words (timeline notes) in the new language
      }
    });
    Promise.all([loadCategories(), loadDepartments()]).then(() => { document.body.dataset.catalogues = 'loaded'; });
    // the list first, in one request; the feed then resumes from the list's position (no wait for it)
    loadList().then(follow);
    try {
      areas = await gcAreas.mine(claims);
      view = gcAreas.draw($('map'), areas);
      fillUnits(claims);
      syncPins();
    } catch (e) {
      $('map').textContent = gc.t('load_failed', { error: e.message });
    }
    // early warnings (预警): circles on the map, a list under it, an item in the panel — for the area roles:
    // a department is not in the warnings' scope (GET /escalation/v1/warnings answers it 403)
    if (me.role !== 'department') gcBoardWarnings.start({
      view, openCase, categoryName,
      showPanel: (children) => { selected = null; showPanel(children); scheduleRender(); },
      caseNumber: (id) => (cases.has(id) ? cases.get(id).case.number : id.slice(0, 8)),
      areaName: (id) => ((areas && areas.grids.find((f) => f.properties.id === id)) || { properties: { name: id } }).properties.name,
    });
    caseFromAddress();
    window.setInterval(() => { recount(); countsDirty = true; tickStates(); scheduleWindow(); }, 15000); // the time left counts down
    window.setInterval(loadList, 120000); // and the whole list is read again now and then
  }

  document.addEventListener('gc:open-case', (e) => openCase(e.detail)); // from the bell, or a link #case=ID
  document.addEventListener('DOMContentLoaded', () => {
    gc.init();
    gc.signIn(start);
  });
}());
