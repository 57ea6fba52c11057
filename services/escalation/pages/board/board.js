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
  const WARN_SECONDS = 3600; // until warnings come from the policy (case.warning), an hour left is a warning
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
  const cases = new Map(); // id → {case, at: Date.now() when received}
  const pins = new Map(); // id → Leaflet circle marker
  let categories = {};
  let areas = null;
  let view = null;
  let selected = null; // {id, etag, case}
  let renderQueued = false;

  const $ = (id) => document.getElementById(id);

  // -- the state of a case ---------------------------------------------------------------------------

  /** The assignment of the signed-in department on a case (a department's board counts its own deadline). */
  function ownAssignment(c) {
    const claims = gc.claims() || {};
    if (claims.role !== 'department') return null;
    const mine = (c.departments || []).filter((d) => d.id === claims.department);
    return mine.length ? mine[mine.length - 1] : null;
  }

  function timeLeft(entry) {
    const own = ownAssignment(entry.case);
    if (own) {
      if (!own.deadline || own.status === 'done' || own.status === 'declined') return null;
      return (Date.parse(own.deadline) - Date.now()) / 1000;
    }
    const left = entry.case.time_left;
    return left === null || left === undefined ? null : left - (Date.now() - entry.at) / 1000;
  }

  function departmentName(id) {
    const d = departments[id];
    return d ? (gc.lang === 'zh' ? d.zh : d.en) : id;
  }

  function stateOf(entry) {
    const c = entry.case;
    if (c.status === 'pending_acceptance') return c.overdue ? 'overdue' : 'pending';
    if (c.triage) return 'triage';
    if (c.status === 'suspended') return 'suspended';
    const left = timeLeft(entry);
    const own = ownAssignment(c);
    if (own ? own.overdue : (c.overdue || c.department_overdue)) return 'overdue';
    if (left !== null && left <= 0) return 'overdue';
    if (c.warning || (left !== null && left < WARN_SECONDS)) return 'warned';
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

  function lead(c) {
    return (c.departments || []).find((d) => d.role === 'lead' && (d.status === 'assigned' || d.status === 'acknowledged'));
  }

  function badge(state) {
    return gc.el('span', { class: 'state ' + state, text: gc.t('state_' + state) });
  }

  // -- the list, the legend and the pins ----------------------------------------------------------------

  function matches(c) {
    const f = $('filters').elements;
    if (f.level.value && String(c.level) !== f.level.value) return false;
    if (f.category.value && c.category !== f.category.value) return false;
    if (f.status.value && c.status !== f.status.value) return false;
    if (f.unit.value && !Object.values(c.areas || {}).some((a) => a && a.id === f.unit.value)) return false;
    return inQueue(c, f.queue.value);
  }

  /** The queues: reports awaiting acceptance, the caller's own cases, and those their unit holds unnamed. */
  function inQueue(c, queue) {
    const me = gc.claims() || {};
    if (queue === 'acceptance') return c.status === 'pending_acceptance';
    if (queue === 'mine') return !!c.assignee && c.assignee === me.sub;
    if (queue === 'unassigned') {
      if (c.assignee || c.status === 'pending_acceptance') return false;
      if (me.role === 'command') return c.level === 4;
      return !!me.area && !!c.owner && c.owner.area_id === me.area;
    }
    return true;
  }

  function sorted() {
    return Array.from(cases.values()).filter((e) => matches(e.case)).sort((a, b) => {
      const x = timeLeft(a); const y = timeLeft(b);
      if (x === null && y === null) return a.case.opened_at < b.case.opened_at ? -1 : 1;
      if (x === null) return 1;
      if (y === null) return -1;
      return x - y;
    });
  }

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    window.requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  function render() {
    const shown = sorted();
    const rows = shown.map((entry) => {
      const c = entry.case;
      const state = stateOf(entry);
      const open = () => openCase(c.id);
      const link = gc.el('a', { href: '#case-' + c.id, text: c.number, onclick: (e) => { e.preventDefault(); open(); } });
      const urged = c.urge_open ? gc.el('span', { class: 'urge', title: gc.t('urged'), text: gc.t('urged') + ' ×' + (c.urges || []).length }) : null;
      return gc.el('tr', { class: 'row-' + state + (selected && selected.id === c.id ? ' selected' : ''), 'data-case': c.id }, [
        gc.el('td', {}, [link, urged]),
        gc.el('td', { text: categoryName(c.category) }),
        gc.el('td', { text: (c.owner && c.owner.area_name) || '' }, [gc.el('div', { class: 'muted small', text: gc.t('level_' + c.level)
          + (lead(c) ? ' · ' + gc.t('role_lead') + ' ' + departmentName(lead(c).id) : '') })]),
        gc.el('td', {}, [badge(state)]),
        gc.el('td', { class: 'num', text: gc.duration(timeLeft(entry)) }),
      ]);
    });
    $('case-rows').replaceChildren(...rows);
    $('count').textContent = gc.t('count_cases', { n: shown.length });
    $('list-status').textContent = shown.length ? '' : gc.t('no_cases');
    const counts = {};
    shown.forEach((e) => { const s = stateOf(e); counts[s] = (counts[s] || 0) + 1; });
    $('legend').replaceChildren(...STATES.map((s) => gc.el('span', { class: 'state ' + s, text: gc.t('state_' + s) + ' ' + (counts[s] || 0) })));
    drawPins(shown);
  }

  const PIN_COLOURS = { 'on-time': '#1b6e2e', warned: '#c77700', overdue: '#b3141b', suspended: '#4f5b66', triage: '#6a1b9a',
    pending: '#0b57a4' };

  function drawPins(shown) {
    if (!view) return;
    const keep = new Set();
    shown.forEach((entry) => {
      const c = entry.case;
      const loc = c.report && c.report.location;
      if (!loc || loc.lat === null || loc.lon === null) return;
      keep.add(c.id);
      const colour = PIN_COLOURS[stateOf(entry)];
      let pin = pins.get(c.id);
      if (!pin) {
        pin = L.circleMarker([loc.lat, loc.lon], { radius: 8, weight: 2, color: '#fff', fillOpacity: 0.95 }).addTo(view.map);
        pin.on('click', () => openCase(c.id));
        pins.set(c.id, pin);
      }
      pin.setLatLng([loc.lat, loc.lon]);
      pin.setStyle({ fillColor: colour, radius: selected && selected.id === c.id ? 12 : 8 });
      pin.bindTooltip(gcAreas.text(c.number + ' · ' + categoryName(c.category)));
    });
    pins.forEach((pin, id) => { if (!keep.has(id)) { pin.remove(); pins.delete(id); } });
  }

  function upsert(c) {
    if (ENDED.includes(c.status)) cases.delete(c.id);
    else cases.set(c.id, { case: c, at: Date.now() });
  }

  async function loadList() {
    const received = new Map();
    for (let page = 1; page <= 20; page += 1) {
      const result = await gc.api('GET', '/escalation/v1/cases?status=' + OPEN_STATUSES + '&page_size=500&page=' + page);
      if (!result.ok) {
        $('list-status').textContent = gc.t('load_failed', { error: gc.problemText(result) });
        return;
      }
      result.data.items.forEach((c) => received.set(c.id, { case: c, at: Date.now() }));
      if (page * result.data.page_size >= result.data.total) break;
    }
    cases.clear();
    received.forEach((v, k) => cases.set(k, v));
    scheduleRender();
  }

  // -- the live feed ------------------------------------------------------------------------------------

  function setLive(state) {
    const live = $('live');
    live.dataset.state = state;
    live.textContent = gc.t('live_' + state);
  }

  async function handle(event) {
    if (event.name === 'hello' || event.name === 'reset') {
      await loadList();
      document.body.dataset.ready = 'true';
    } else if (event.name === 'case') {
      const { case: c, step } = JSON.parse(event.data);
      upsert(c);
      scheduleRender();
      document.dispatchEvent(new CustomEvent('gc:step', { detail: step })); // the bell looks for news
      if (selected && selected.id === c.id && step.actor !== (gc.claims() || {}).sub) {
        $('panel-changed').hidden = false;
      }
    } else if (event.name === 'removed') {
      // the case left the caller's area (transferred, re-routed): off the board now, not at the next reload
      const { case_id: id, type } = JSON.parse(event.data);
      cases.delete(id);
      scheduleRender();
      if (selected && selected.id === id) {
        selected = null;
        showPanel([gc.el('p', { class: 'notice warn', role: 'alert', id: 'panel-removed', text: gc.t('case_removed_' + (type === 'rerouted' ? 'rerouted' : 'transferred')) })]);
      }
    }
  }

  /** The live feed, read by the shared feed.js (resumed with Last-Event-ID, reconnecting by itself). */
  function follow() {
    gcFeed.follow({ onEvent: handle, onState: setLive });
  }

  // -- the case panel -----------------------------------------------------------------------------------

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
    selected = { id: c.id, etag: result.headers.get('ETag'), case: c };
    window.history.replaceState(null, '', '#case=' + encodeURIComponent(c.number));
    if (!ENDED.includes(c.status) || cases.has(c.id)) upsert(c);
    scheduleRender();
    renderPanel(c, message);
    const pin = pins.get(c.id);
    if (pin && view && !view.map.getBounds().contains(pin.getLatLng())) view.map.panTo(pin.getLatLng());
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
  }

  function renderPanel(c, message) {
    const entry = cases.get(c.id) || { case: c, at: Date.now() };
    const state = c.status === 'closed' ? 'closed' : stateOf(entry);
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
      gc.el('div', { class: 'when', text: gc.time(s.at) + ' · ' + s.actor + ' · ' + gc.t('level_' + s.level) }),
      gc.el('strong', { text: gc.t('step_' + s.type) }),
      s.note ? gc.el('span', { text: ' — ' + s.note }) : null,
    ])));
    const actions = gc.el('div', { class: 'actions-row' }, (c.actions || []).map((name) => gc.el('button', {
      type: 'button', class: name === 'acknowledge' || name === 'resolve' ? '' : 'secondary', 'data-action': name,
      text: gc.t('action_' + name), onclick: () => actionForm(name),
    })));
    showPanel([
      gc.el('h3', { class: 'case-title' }, [gc.el('span', { text: c.number + ' ' }), badge(state),
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
        return gc.el('div', { class: 'row' }, [
          input('amount', gc.t('field_amount'), gc.el('input', { type: 'number', min: '0.1', step: '0.1', value: '4', required: true })),
          input('unit', gc.t('field_unit'), gc.el('select', {}, ['hours', 'minutes'].map((u) => gc.el('option', { value: u, text: gc.t('unit_' + u + '_name') })))),
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
          type: 'text', list: 'af-assignee-options', autocomplete: 'off', value: (gc.claims() || {}).sub || '' })), people,
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
        selected.etag = result.headers.get('ETag');
        upsert(result.data);
        scheduleRender();
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

  // -- start ----------------------------------------------------------------------------------------------

  async function loadDepartments() {
    const result = await gc.api('GET', '/dispatch/v1/departments');
    if (!result.ok) return;
    result.data.departments.forEach((d) => { departments[d.id] = d; });
    scheduleRender();
  }

  async function loadCategories() {
    const result = await gc.api('GET', '/intake/v1/categories');
    if (!result.ok) return;
    result.data.forEach((c) => { categories[c.code] = c; });
    fillCategories();
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
    setLive('connecting');
    $('filters').addEventListener('change', scheduleRender);
    $('search').addEventListener('submit', search);
    window.addEventListener('hashchange', caseFromAddress);
    document.addEventListener('gc:language', () => {
      fillCategories();
      setLive($('live').dataset.state);
      scheduleRender();
      if (selected) renderPanel(selected.case);
    });
    loadCategories();
    loadDepartments();
    try {
      areas = await gcAreas.mine(claims);
      view = gcAreas.draw($('map'), areas);
      fillUnits(claims);
    } catch (e) {
      $('map').textContent = gc.t('load_failed', { error: e.message });
    }
    gcBoardWarnings.start({ // early warnings (预警): circles on the map, a list under it, an item in the panel
      view, openCase, categoryName,
      showPanel: (children) => { selected = null; showPanel(children); scheduleRender(); },
      caseNumber: (id) => (cases.has(id) ? cases.get(id).case.number : id.slice(0, 8)),
      areaName: (id) => ((areas && areas.grids.find((f) => f.properties.id === id)) || { properties: { name: id } }).properties.name,
    });
    follow();
    caseFromAddress();
    window.setInterval(scheduleRender, 15000); // the time left counts down
    window.setInterval(loadList, 120000); // and the whole list is read again now and then
  }

  document.addEventListener('gc:open-case', (e) => openCase(e.detail)); // from the bell, or a link #case=ID
  document.addEventListener('DOMContentLoaded', () => {
    gc.init();
    gc.signIn(start);
  });
}());
