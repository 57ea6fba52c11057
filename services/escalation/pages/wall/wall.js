/* The wall screen (大屏) of a command center: big live figures, the live map and the latest escalations,
 * readable across a room, with nothing to click. It keeps itself up to date and recovers by itself.
 *
 * - The open cases: GET /escalation/v1/cases/rows (every one in one request, the board's list; a row
 *   becomes a case by gc.caseFromRow), then the live feed GET /escalation/v1/cases/events (Server-Sent
 *   Events read by the shared feed.js) from the answer's `last_event_id`, so nothing between the two is
 *   missed, resumed with Last-Event-ID after a drop or a server restart — the board's feed. "Open" and
 *   "overdue" are counted from them.
 * - The latest escalations: the feed's `escalated` and `overdue` steps. The feed starts HISTORY rows before
 *   the list's `last_event_id`, so the list shows the recent ones at once; those rows' cases are in the list
 *   already and are not applied again.
 * - The cases opened today ("new cases today": a report refused, voided or merged is not a case, so this
 *   is not a count of reports) and the month's on-time rate: GET /escalation/v1/stats/closure-times by sub-center
 *   (by station or grid for a narrower caller), per day for today and per month for this month, in the
 *   city's time zone (the answer's `time_zone`); read every minute, and soon after a case opens or closes.
 *   The month's rate is Σ on-time ÷ Σ closed over the units (each row's on_time_rate × closed).
 */
(function () {
  'use strict';
  const OPEN_STATUSES = 'open,acknowledged,dispatched,verifying,rework,suspended';
  const STATS = '/escalation/v1/stats/closure-times';
  const HISTORY = 400; // timeline rows read back at start for the escalation list (the feed replays ≤ 500)
  const KEEP = 40; // escalations listed
  const STATS_EVERY = 60000;
  const PIN_COLOURS = { overdue: '#b3261e', warned: '#a05a00', 'on-time': '#1b6e2e' };
  const STATE_RANK = ['overdue', 'warned', 'on-time']; // the most urgent first: a cluster takes its colour
  const cases = new Map(); // id → {case, at}
  const pins = new Map(); // id → circle marker (in the cluster group)
  let cluster = null;
  let categories = {};
  let areas = null;
  let view = null;
  let pinRenderer = null;
  let units = []; // [{id, name}]
  let unitLevel = 'subcenter';
  let zone = null; // the city's IANA time zone, from the statistics
  let today = {}; // unit id → opened today; '' → total
  let month = {}; // unit id → {closed, onTime}; '' → totals
  let escalations = []; // {id, at, type, level, number, category, owner}
  let listedAt = null; // the feed's position the list was read at: the steps up to it are in the list
  let historyRead = false; // the recent escalations were asked for (the feed started before the list's position)
  let statsTimer = null;

  const $ = (id) => document.getElementById(id);

  // -- the state of a case (as the board colours it) ----------------------------------------------------

  function timeLeft(entry) {
    const left = entry.case.time_left;
    return left === null || left === undefined ? null : left - (Date.now() - entry.at) / 1000;
  }

  function stateOf(entry) {
    const c = entry.case;
    const left = timeLeft(entry);
    if (c.overdue || c.department_overdue || (left !== null && left <= 0)) return 'overdue';
    if (c.warned !== null && c.warned !== undefined) return 'warned';
    return 'on-time';
  }

  function unitOf(c) {
    const area = (c.areas || {})[unitLevel];
    return area ? area.id : null;
  }

  function categoryName(code) {
    const c = categories[code];
    return c ? (gc.lang === 'zh' ? c.zh : c.en) : code;
  }

  function number(value) {
    return value === null || value === undefined ? '—' : new Intl.NumberFormat(gc.lang === 'zh' ? 'zh-CN' : 'en-GB').format(value);
  }

  function percent(part, whole) {
    if (!whole) return '—';
    return new Intl.NumberFormat(gc.lang === 'zh' ? 'zh-CN' : 'en-GB', { style: 'percent', maximumFractionDigits: 1 }).format(part / whole);
  }

  /** The city's zone: the statistics', else the one every API answer names (gc.zone); null before any. */
  function cityZone() {
    return zone || gc.zone;
  }

  /** A local time in the city's zone (the browser's until the zone is known). */
  function clockText(date, withSeconds) {
    const options = { hour: '2-digit', minute: '2-digit', hour12: false };
    if (withSeconds) options.second = '2-digit';
    if (cityZone()) options.timeZone = cityZone();
    return date.toLocaleTimeString(gc.lang === 'zh' ? 'zh-CN' : 'en-GB', options);
  }

  function localDate(date) {
    return new Intl.DateTimeFormat('en-CA', { timeZone: cityZone() || undefined, year: 'numeric', month: '2-digit', day: '2-digit' }).format(date);
  }

  function addDays(iso, n) {
    const d = new Date(iso + 'T00:00:00Z');
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }

  function nextMonth(iso) {
    const d = new Date(iso.slice(0, 8) + '01T00:00:00Z');
    d.setUTCMonth(d.getUTCMonth() + 1);
    return d.toISOString().slice(0, 10);
  }

  // -- drawing ---------------------------------------------------------------------------------------------

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    window.requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  function setFigure(id, value) {
    $(id).querySelector('[data-value]').textContent = value;
  }

  function render() {
    const entries = Array.from(cases.values());
    const overdue = entries.filter((e) => stateOf(e) === 'overdue');
    setFigure('fig-open', number(entries.length));
    setFigure('fig-overdue', number(overdue.length));
    $('fig-overdue').classList.toggle('alarm', overdue.length > 0);
    setFigure('fig-today', today[''] === undefined ? '—' : number(today['']));
    const totals = month[''] || { closed: 0, onTime: 0 };
    setFigure('fig-on-time', percent(totals.onTime, totals.closed));
    $('fig-on-time-of').textContent = totals.closed ? gc.t('fig_on_time_of', { n: number(totals.closed) }) : '';
    renderUnits(entries);
    drawPins(entries);
  }

  function renderUnits(entries) {
    const open = {};
    const late = {};
    entries.forEach((e) => {
      const id = unitOf(e.case);
      open[id] = (open[id] || 0) + 1;
      if (stateOf(e) === 'overdue') late[id] = (late[id] || 0) + 1;
    });
    $('units-title').dataset.i18n = 'units_' + unitLevel;
    $('units-title').textContent = gc.t('units_' + unitLevel);
    $('unit-rows').replaceChildren(...units.map((u) => {
      const m = month[u.id] || { closed: 0, onTime: 0 };
      return gc.el('tr', { 'data-unit': u.id }, [
        gc.el('th', { scope: 'row', text: u.name }),
        gc.el('td', { class: 'num', text: number(today[u.id] || 0) }),
        gc.el('td', { class: 'num', text: number(open[u.id] || 0) }),
        gc.el('td', { class: 'num' + (late[u.id] ? ' alarm' : ''), text: number(late[u.id] || 0) }),
        gc.el('td', { class: 'num', text: percent(m.onTime, m.closed) }),
      ]);
    }));
  }

  /** The open cases' pins, clustered as on the board (leaflet.markercluster, gcAreas.clusterIcon): cases
   *  close together are one disc with their count, coloured by the most urgent of them — nine cases at one
   *  crossing read "9", never one dot. Pins and discs grow with the screen's height. */
  function drawPins(entries) {
    if (!view) return;
    const scale = Math.max(1, window.innerHeight / 1080);
    if (!cluster) {
      cluster = L.markerClusterGroup({ animate: false, showCoverageOnHover: false, zoomToBoundsOnClick: false,
        spiderfyOnMaxZoom: false, maxClusterRadius: Math.round(48 * scale), disableClusteringAtZoom: 17,
        iconCreateFunction: gcAreas.clusterIcon(STATE_RANK, scale) });
      view.map.addLayer(cluster);
    }
    const radius = Math.max(7, Math.round(9 * window.innerHeight / 1080));
    const keep = new Set();
    const add = [];
    const drop = [];
    const restyled = [];
    entries.forEach((entry) => {
      const c = entry.case;
      const loc = c.report && c.report.location;
      if (!loc || loc.lat === null || loc.lon === null || loc.lat === undefined) return;
      keep.add(c.id);
      const state = stateOf(entry);
      let pin = pins.get(c.id);
      if (pin && !pin.getLatLng().equals([loc.lat, loc.lon])) { // moved: clustered again where it is now
        drop.push(pin);
        pins.delete(c.id);
        pin = null;
      }
      if (!pin) {
        const made = L.circleMarker([loc.lat, loc.lon], { renderer: pinRenderer, radius, weight: 2, color: '#fff',
          fillOpacity: 0.95, fillColor: PIN_COLOURS[state], interactive: false, className: 'wall-pin', state });
        made.on('add', () => {
          const el = made.getElement();
          el.dataset.case = c.id;
          el.dataset.state = made.options.state;
        });
        pins.set(c.id, made);
        add.push(made);
      } else if (pin.options.state !== state || pin.options.radius !== radius) {
        pin.options.state = state;
        pin.setStyle({ fillColor: PIN_COLOURS[state], radius });
        if (pin.getElement()) pin.getElement().dataset.state = state;
        restyled.push(pin);
      }
    });
    pins.forEach((pin, id) => { if (!keep.has(id)) { drop.push(pin); pins.delete(id); } });
    if (drop.length) cluster.removeLayers(drop);
    if (add.length) cluster.addLayers(add);
    if (restyled.length) cluster.refreshClusters(restyled);
  }

  function renderEscalations() {
    const list = $('escalation-list');
    const items = escalations.map((e) => gc.el('li', { class: 'escalation ' + e.type, 'data-step': e.id }, [
      gc.el('span', { class: 'when', text: clockText(new Date(e.at), false) }),
      gc.el('span', { class: 'what' }, [
        gc.el('strong', { text: e.number + ' ' }),
        gc.el('span', { text: categoryName(e.category) }),
      ]),
      gc.el('span', { class: 'where', text: (e.type === 'overdue' ? gc.t('overdue_at', { level: gc.t('level_' + e.level) })
        : gc.t('escalated_to', { level: gc.t('level_' + e.level) })) + (e.owner ? ' · ' + e.owner : '') }),
    ]));
    list.replaceChildren(...items);
    $('escalations-none').hidden = escalations.length > 0;
    // More than the box holds: the list scrolls by itself, a copy behind it so that the loop is seamless.
    const ticker = $('ticker');
    ticker.classList.remove('scrolling');
    ticker.querySelectorAll('.escalation-copy').forEach((n) => n.remove());
    if (list.scrollHeight > ticker.clientHeight + 4) {
      const copy = list.cloneNode(true);
      copy.removeAttribute('id');
      copy.classList.add('escalation-copy');
      copy.setAttribute('aria-hidden', 'true');
      ticker.append(copy);
      ticker.style.setProperty('--ticker-seconds', Math.max(20, escalations.length * 4) + 's');
      ticker.classList.add('scrolling');
    }
  }

  // -- the data --------------------------------------------------------------------------------------------

  //: the statuses a case ends in: off the wall (it counts open cases)
  const ENDED = new Set(['closed', 'refused', 'voided', 'merged']);

  function upsert(c) {
    if (ENDED.has(c.status)) cases.delete(c.id);
    else cases.set(c.id, { case: c, at: Date.now() });
  }

  /** Every open case of the wall's area in one request (the board's rows: the columns the figures, the
   *  units' table and the pins read); the feed's position it was read at is kept in `listedAt`. */
  async function loadList() {
    const result = await gc.api('GET', '/escalation/v1/cases/rows?status=' + OPEN_STATUSES);
    if (!result.ok) throw new Error(gc.problemText(result));
    const { columns, rows, names, last_event_id: at } = result.data;
    const now = Date.now();
    cases.clear();
    rows.forEach((row) => { const c = gc.caseFromRow(columns, row, names); cases.set(c.id, { case: c, at: now }); });
    listedAt = at;
    scheduleRender();
  }

  /** Where the feed starts: HISTORY rows before the list's position, for the recent escalations. */
  function historyFrom() {
    historyRead = true;
    return String(Math.max(0, listedAt - HISTORY));
  }

  async function stats(query) {
    const result = await gc.api('GET', STATS + '?group_by=' + unitLevel + '&' + query);
    if (!result.ok) throw new Error(gc.problemText(result));
    return result.data;
  }

  async function loadStats() {
    try {
      const utc = new Date().toISOString().slice(0, 10);
      const days = await stats('period=day&from=' + addDays(utc, -1) + '&to=' + addDays(utc, 2));
      zone = days.time_zone;
      tick(); // the clock in the city's zone from now on
      const local = localDate(new Date());
      const counted = { '': 0 };
      days.rows.filter((r) => r.period_start === local).forEach((r) => {
        counted[r.area_id] = (counted[r.area_id] || 0) + r.opened;
        counted[''] += r.opened;
      });
      const first = local.slice(0, 8) + '01';
      const months = await stats('period=month&from=' + first + '&to=' + nextMonth(first));
      const summed = { '': { closed: 0, onTime: 0 } };
      months.rows.forEach((r) => {
        const onTime = r.on_time_rate === null ? 0 : Math.round(r.on_time_rate * r.closed);
        const m = summed[r.area_id] || (summed[r.area_id] = { closed: 0, onTime: 0 });
        m.closed += r.closed; m.onTime += onTime;
        summed[''].closed += r.closed; summed[''].onTime += onTime;
      });
      today = counted;
      month = summed;
      updatedAt = new Date();
      showUpdated();
      scheduleRender();
    } catch (e) {
      updatedAt = null;
      showUpdated();
    }
  }

  let updatedAt = null; // when the figures were last read (null: they could not be)

  /** The footer's "updated at" (or "unavailable"), in the page's language: written again on a switch. */
  function showUpdated() {
    $('updated').textContent = updatedAt ? gc.t('updated', { time: clockText(updatedAt, true) }) : gc.t('stats_unavailable');
  }

  function statsSoon() {
    window.clearTimeout(statsTimer);
    statsTimer = window.setTimeout(loadStats, 1500);
  }

  // -- the live feed ---------------------------------------------------------------------------------------

  function setLive(state) {
    const live = $('live');
    const was = live.dataset.state;
    live.dataset.state = state;
    live.textContent = gc.t('live_' + state);
    if (state === 'live' && was === 'reconnecting') loadStats(); // back after a restart: read everything again
  }

  function noteEscalation(c, step) {
    if (step.type !== 'escalated' && step.type !== 'overdue') return;
    if (escalations.some((e) => e.id === step.id)) return;
    escalations.unshift({ id: step.id, at: step.at, type: step.type, level: step.level, number: c.number,
      category: c.category, owner: c.owner && c.owner.area_name });
    escalations.sort((a, b) => b.id - a.id);
    escalations = escalations.slice(0, KEEP);
    renderEscalations();
  }

  /** Apply one event of the live feed (shared feed.js); {resumeFrom: ID} when the feed is to be opened once
   *  more from ID. */
  async function handle(event) {
    if (event.name === 'hello' || event.name === 'reset') { // the list could not be read at start, or too much was missed
      await loadList();
      loadStats();
      document.body.dataset.ready = 'true';
      if (!historyRead && listedAt > 0) return { resumeFrom: historyFrom() };
      return undefined;
    }
    const listed = listedAt !== null && Number(event.id) <= listedAt; // its change is in the list already
    if (event.name === 'case') {
      const { case: c, step } = JSON.parse(event.data);
      noteEscalation(c, step);
      if (listed) return undefined;
      upsert(c);
      scheduleRender();
      if (step.type === 'opened' || step.type === 'closed') statsSoon();
    } else if (event.name === 'removed' && !listed) { // the case left the wall's area (transferred, re-routed)
      cases.delete(JSON.parse(event.data).case_id);
      scheduleRender();
    }
    return undefined;
  }

  // -- start -----------------------------------------------------------------------------------------------

  async function loadCategories() {
    try {
      const result = await gc.api('GET', '/intake/v1/categories');
      if (result.ok) result.data.forEach((c) => { categories[c.code] = c; });
    } catch (e) { /* names come later; codes meanwhile */ }
    renderEscalations();
  }

  function tick() {
    $('clock').textContent = clockText(new Date(), true);
  }

  async function start(claims) {
    setLive('connecting');
    document.addEventListener('gc:language', () => {
      setLive($('live').dataset.state);
      if ($('updated').textContent) showUpdated();
      renderEscalations();
      scheduleRender();
      tick();
    });
    tick();
    window.setInterval(tick, 1000);
    loadCategories();
    try {
      areas = await gcAreas.mine(claims);
      if (areas.subcenters.length) {
        unitLevel = 'subcenter';
        units = areas.subcenters;
      } else if (areas.outlines.length) {
        unitLevel = 'station';
        units = areas.outlines;
      } else {
        unitLevel = 'grid';
        units = areas.grids;
      }
      units = units.map((f) => ({ id: f.properties.id, name: f.properties.name }))
        .sort((a, b) => (a.id < b.id ? -1 : 1));
      view = gcAreas.draw($('map'), areas, { zoomControl: false, keyboard: false });
      pinRenderer = L.svg({ padding: 0.5 }).addTo(view.map);
    } catch (e) {
      $('map').textContent = e.message;
    }
    let from = null; // the list not read: the feed's `hello` has it read
    try {
      await loadList();
      from = historyFrom();
      loadStats();
      document.body.dataset.ready = 'true';
    } catch (e) { /* offline or refused: read again on the feed's hello */ }
    gcFeed.follow({ lastEventId: from, onEvent: handle, onState: setLive });
    window.setInterval(scheduleRender, 15000); // time left counts down: an open case turns overdue
    window.setInterval(loadStats, STATS_EVERY);
    window.setInterval(() => loadList().catch(() => {}), 300000); // and the whole list is read again now and then
  }

  document.addEventListener('DOMContentLoaded', () => {
    gc.init({ persistToken: true }); // a wall screen keeps its sign-in over a restart of its browser
    gc.signIn(start);
  });
}());
