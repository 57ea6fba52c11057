/* The grid worker's phone page: report in one screen, offline first; my tasks (the level-1 cases of my
 * grid: acknowledge, fix on the spot with after-photos, escalate); my reports; cases to verify.
 *
 * What the report form offers follows intake's own OpenAPI description (/intake/openapi.json): severity,
 * the GPS accuracy and photos are sent only where the server takes them, so the page works against
 * every intake version without a 422. Reports go through the outbox (outbox.js): kept first, then sent
 * with their Idempotency-Key, now or when the network returns.
 *
 * A photo is shrunk on the phone before it is kept (`shrinkPhoto`): a camera's 11 MB JPEG or a 50 MP
 * picture would be refused by intake (its byte and pixel limits, read from the same OpenAPI description),
 * so it is drawn on a canvas at most that many pixels and re-encoded as JPEG until it is within the
 * byte limit. A photo the server still refuses is shown with the server's reason, never lost in silence.
 *
 * After a report is sent or kept the form is back to its first state (the first category and its own
 * severity, no description, no photo, the pin on the GPS position; a refused report keeps everything, to be
 * corrected) and the outcome — the case number, or "kept" — is scrolled to and focused, where
 * the worker's eye is. Severity is offered only where the policy has rules for more than one for the
 * chosen category (its `severities` in GET /intake/v1/categories). The network indicator in the top
 * bar has one source, `online` below: what the last request found (gridcase.js's `gc:network`, the
 * outbox's own sends) and the browser's offline event; every message about the network follows it.
 *
 * The bell (shared bell.js) lists the worker's notifications — a case returned, rework, a verification
 * due, an urge — read again when the live feed (shared feed.js) brings a step of a case of the grid,
 * which also refreshes "my tasks" and "to verify". Opening one shows its case where it is on the page.
 * In the bell the worker may follow the cases they reported (their own in-app subscription).
 */
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  //: intake's photo limits when its OpenAPI description does not say (10 MiB, 16 megapixels)
  const PHOTO_LIMITS = { bytes: 10 * 1024 * 1024, pixels: 16000000 };
  let caps = { severity: false, accuracy: false, photos: null, mine: false, clientTime: null, photoLimits: PHOTO_LIMITS };
  let categories = [];
  let claims = null;
  let map = null;
  let pin = null;
  let fix = null; // {lat, lon, accuracy} from the GPS
  let moved = false;
  let gridCentre = null;
  let online = navigator.onLine; // the one truth of the network indicator (setNetwork)
  let listsTimer = null;
  let listsLoading = null; // the lists being read again after a step (listsSoon)
  let opened = null; // the case last opened from the bell: marked on the lists

  // -- what this intake accepts -----------------------------------------------------------------------

  async function capabilities() {
    try {
      const response = await fetch('/intake/openapi.json', { cache: 'no-store' });
      const spec = await response.json();
      const schemas = (spec.components && spec.components.schemas) || {};
      const deref = (s) => (s && s.$ref ? schemas[s.$ref.split('/').pop()] : (s && s.allOf ? deref(s.allOf[0]) : s)) || {};
      const post = ((spec.paths['/intake/v1/reports'] || {}).post || {});
      const body = deref((((post.requestBody || {}).content || {})['application/json'] || {}).schema);
      const props = body.properties || {};
      const location = deref(props.location).properties || {};
      const photoPath = Object.keys(spec.paths).find((p) => /^\/intake\/v1\/reports\/\{[^}]+\}\/photos$/.test(p));
      let photoField = null;
      let photoLimits = PHOTO_LIMITS;
      if (photoPath && spec.paths[photoPath].post) {
        const form = deref((((spec.paths[photoPath].post.requestBody || {}).content || {})['multipart/form-data'] || {}).schema);
        photoField = Object.keys(form.properties || {}).find((k) => (form.properties[k].format || '') === 'binary') || 'photo';
        const file = (form.properties || {})[photoField] || {};
        photoLimits = { bytes: file['x-max-bytes'] || PHOTO_LIMITS.bytes, pixels: file['x-max-pixels'] || PHOTO_LIMITS.pixels };
      }
      caps = {
        severity: 'severity' in props,
        accuracy: 'accuracy' in location,
        clientTime: ['client_time', 'client_reported_at', 'reported_at_client'].find((k) => k in props) || null,
        photos: photoField,
        photoLimits,
        locationOptional: !(body.required || []).includes('location'),
        mine: !!(spec.paths['/intake/v1/reports'] || {}).get,
      };
      window.localStorage.setItem('gridcase.app.caps', JSON.stringify(caps));
    } catch (e) {
      caps = JSON.parse(window.localStorage.getItem('gridcase.app.caps') || 'null') || caps;
    }
    $('photo-field').hidden = !caps.photos;
  }

  // -- the form -------------------------------------------------------------------------------------------

  async function loadCategories() {
    const result = await gc.api('GET', '/intake/v1/categories').catch(() => null);
    if (result && result.ok) {
      categories = result.data;
      window.localStorage.setItem('gridcase.app.categories', JSON.stringify(categories));
    } else {
      categories = JSON.parse(window.localStorage.getItem('gridcase.app.categories') || '[]');
    }
    fillCategories();
  }

  function fillCategories() {
    const select = $('r-category');
    const value = select.value;
    select.replaceChildren(...categories.map((c) => gc.el('option', { value: c.code, text: gc.lang === 'zh' ? c.zh : c.en })));
    if (value) select.value = value;
    fillSeverities(!value);
  }

  function severityName(code) {
    const name = gc.t('severity_' + code);
    return name === 'severity_' + code ? code : name;
  }

  /** The severities the worker may propose for the chosen category: those the policy has rules for
   *  (its `severities`), offered only where there is a choice and intake takes one. The proposal starts
   *  at the category's own (a missing cover is urgent) when `reset`, else stays as chosen; staff confirm
   *  or change it when they accept the report. */
  function fillSeverities(reset) {
    const chosen = categories.find((c) => c.code === $('r-category').value);
    const options = (chosen && chosen.severities) || [];
    const field = $('severity-field');
    const before = (document.querySelector('#severity-choices input:checked') || {}).value;
    const pick = !reset && options.includes(before) ? before : (chosen && chosen.severity);
    field.hidden = !caps.severity || options.length < 2;
    $('severity-choices').replaceChildren(...options.map((code) => gc.el('label', { class: 'choice-option' }, [
      gc.el('input', { type: 'radio', name: 'severity', value: code, checked: code === pick }),
      gc.el('span', { text: severityName(code) }),
    ])));
  }

  function showLocation() {
    const status = $('location-status');
    if (moved) status.textContent = gc.t('location_moved');
    else if (fix) status.textContent = gc.t('location_fix', { m: Math.round(fix.accuracy) });
    else status.textContent = gc.t(navigator.geolocation ? 'locating' : 'location_none');
  }

  async function drawMap() {
    try {
      const areas = await gcAreas.mine(claims);
      const view = gcAreas.draw($('map'), areas);
      map = view.map;
      const bounds = view.layer.getBounds();
      gridCentre = bounds.isValid() ? bounds.getCenter() : null;
    } catch (e) {
      map = L.map($('map'), { preferCanvas: true }).setView([0, 0], 2);
    }
    const start = fix ? [fix.lat, fix.lon] : gridCentre;
    if (start) placePin(start);
  }

  function placePin(latlng) {
    if (!map) return;
    if (!pin) {
      pin = L.marker(latlng, { draggable: true, keyboard: true, title: gc.t('location'), alt: gc.t('location') }).addTo(map);
      pin.on('dragend', () => { moved = true; showLocation(); });
    } else {
      pin.setLatLng(latlng);
    }
  }

  function watchGps() {
    if (!navigator.geolocation) { showLocation(); return; }
    const timer = window.setTimeout(() => { if (!fix) $('location-status').textContent = gc.t('location_none'); }, 10000);
    navigator.geolocation.watchPosition((p) => {
      window.clearTimeout(timer);
      fix = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy };
      if (!moved) placePin([fix.lat, fix.lon]);
      showLocation();
    }, () => { $('location-status').textContent = gc.t('location_none'); }, { enableHighAccuracy: true, maximumAge: 10000 });
  }

  function reportBody() {
    const form = $('report').elements;
    // Without a GPS fix the pin only marks the grid's middle: where intake takes a report without a
    // position (a grid worker's goes to their own grid, flagged unverified), none is invented.
    const guessed = !fix && !moved;
    const at = guessed && caps.locationOptional ? null : (pin ? pin.getLatLng() : null);
    const body = { category: form.category.value, description: form.description.value.trim() };
    if (at) body.location = { lon: Math.round(at.lng * 1e7) / 1e7, lat: Math.round(at.lat * 1e7) / 1e7 };
    if (caps.accuracy && fix && !moved && body.location) body.location.accuracy = fix.accuracy;
    const severity = document.querySelector('#severity-choices input:checked');
    if (caps.severity && !$('severity-field').hidden && severity) body.severity = severity.value;
    if (caps.clientTime) body[caps.clientTime] = new Date().toISOString();
    return body;
  }

  // -- the photo, shrunk to what the server takes ------------------------------------------------------

  function canvasBlob(canvas, quality) {
    return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));
  }

  /** The photo to keep: `file` itself when the server takes it as it is (a JPEG or PNG within the byte and
   *  pixel limits), else a JPEG re-encoded from a canvas of at most `limits.pixels` pixels and at most
   *  `limits.bytes` bytes (lower quality, then fewer pixels, until it fits). A file this browser cannot
   *  decode is kept as it is: the server then says why it refuses it. */
  async function shrinkPhoto(file, limits) {
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
    } catch (e) {
      return file;
    }
    const pixels = bitmap.width * bitmap.height;
    if (file.size <= limits.bytes && pixels <= limits.pixels && ['image/jpeg', 'image/png'].includes(file.type)) {
      bitmap.close();
      return file;
    }
    let scale = Math.min(1, Math.sqrt(limits.pixels / pixels));
    const canvas = document.createElement('canvas');
    for (let attempt = 0; attempt < 6; attempt += 1) {
      canvas.width = Math.max(1, Math.floor(bitmap.width * scale));
      canvas.height = Math.max(1, Math.floor(bitmap.height * scale));
      canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      for (const quality of [0.9, 0.8, 0.7, 0.6]) {
        const blob = await canvasBlob(canvas, quality);
        if (blob && blob.size <= limits.bytes) {
          bitmap.close();
          return blob;
        }
      }
      scale *= 0.7;
    }
    bitmap.close();
    return file;
  }

  /** Say `text` in the message line; `look`: bring it where the eye is, as after the worker's own submit —
   *  not for what happens meanwhile (a report sent later). */
  /** What the message line says, kept so that it is said again when the language is switched:
   *  {words: () => text in the page's language, kind, about} or null. */
  let said = null;

  /** Say `words` (a function giving the text in the page's language; a plain text stays as it is) on the
   *  message line; `about`: 'network' for a line that the network's return makes untrue. */
  function say(words, kind, look, about) {
    said = words ? { words: typeof words === 'function' ? words : () => words, kind, about } : null;
    const line = drawSaid();
    if (line && look) lookAt(line);
  }

  function drawSaid() {
    const line = said ? gc.el('p', { class: 'notice ' + (said.kind || ''), tabindex: '-1' }, gc.numbered(said.words())) : '';
    if (line && said.about) line.dataset.about = said.about;
    $('message').replaceChildren(line);
    return line;
  }

  /** The message line in the page's new language; a photo's refusal is the server's words, so the server
   *  is asked again (the same photo, refused for the same reason) and says it in the new language. */
  async function sayAgain() {
    const now = said;
    if (!now) return;
    drawSaid();
    if (!now.photo) return;
    const asked = gc.lang;
    const again = await GridcaseOutbox.askPhoto(now.photo).catch(() => null);
    if (said !== now || gc.lang !== asked || !again) return;
    if (again.outcome === 'refused') now.photo.error = again.error;
    else if (again.outcome === 'sent') { now.photo.error = null; now.kind = 'good'; loadMine(); } // taken this time
    drawSaid();
  }

  /** Scroll `element` into view and focus it, once the page has laid out what changed with it (the
   *  outbox line above it appears, the form below it empties). */
  function lookAt(element) {
    window.requestAnimationFrame(() => {
      element.scrollIntoView({ block: 'center' });
      element.focus({ preventScroll: true });
    });
  }

  /** The form after a report is sent or kept: back to the state it had when the page opened, nothing of
   *  the last report carried into the next one — the first category again (the next report's category is
   *  chosen, not inherited), its own severity, no description, no photo, the pin back on the GPS position. */
  function clearForm() {
    $('report').reset(); // every field to its default: the select's first option, no text, no file
    fillSeverities(true);
    moved = false;
    if (fix) placePin([fix.lat, fix.lon]);
    showLocation();
  }

  async function submit(e) {
    e.preventDefault();
    const form = $('report');
    const body = reportBody();
    if (!body.description || (!body.location && !caps.locationOptional)) {
      form.elements.description.focus();
      form.reportValidity();
      return;
    }
    const button = $('submit');
    button.disabled = true;
    button.textContent = gc.t('submitting');
    const chosen = caps.photos && form.elements.photo.files[0];
    if (chosen) button.textContent = gc.t('photo_shrinking');
    const photo = chosen ? await shrinkPhoto(chosen, caps.photoLimits || PHOTO_LIMITS) : null;
    await GridcaseOutbox.add(body, gc.token(), photo, caps.photos);
    let sentNow = null;
    let refused = null;
    const outcome = await GridcaseOutbox.flush((result) => {
      if (result.outcome === 'sent' || result.outcome === 'photo_waiting') sentNow = result;
      else refused = result.error;
    });
    setNetwork(outcome !== 'offline');
    button.disabled = false;
    button.textContent = gc.t('submit');
    await showOutbox();
    if (sentNow) {
      sayOutcome(sentNow, 'sent', true);
      clearForm();
    } else if (refused) {
      say(() => gc.t('refused', { error: refused }), 'bad', true);
    } else {
      const queued = online ? 'queued_server' : 'queued';
      say(() => gc.t(queued), 'warn', true, online ? undefined : 'network'); // said while offline: gone when it returns
      clearForm();
      askForSync();
    }
    loadMine();
  }

  // -- the outbox and the network -------------------------------------------------------------------------

  async function askForSync() {
    try {
      const registration = await navigator.serviceWorker.ready;
      if (registration.sync) await registration.sync.register('gridcase-outbox');
    } catch (e) { /* no Background Sync: the page sends when it sees the network */ }
  }

  async function showOutbox() {
    const waiting = (await GridcaseOutbox.waiting()).filter((i) => !i.refused);
    const box = $('outbox-status');
    box.hidden = !waiting.length;
    box.textContent = gc.t('queued_count', { n: waiting.length });
  }

  /** What became of a sent report, and of its photo: a photo the server refused is said, with its reason. */
  function sayOutcome(result, message, look) {
    const number = result.report.number;
    if (result.photoRefused) {
      const photo = Object.assign({}, result.refusedPhoto, { error: result.photoRefused });
      say(() => (photo.error ? gc.t('photo_refused', { number, error: photo.error }) : gc.t(message, { number })), 'bad', look);
      said.photo = photo; // the server is asked again in a new language
    } else if (result.outcome === 'photo_waiting') say(() => gc.t('photo_waiting', { number }), 'warn', look);
    else say(() => gc.t(message, { number }), 'good', look);
  }

  async function sendWaiting() {
    if (!(await GridcaseOutbox.waiting()).length) return;
    const results = [];
    const outcome = await GridcaseOutbox.flush((result) => { if (result.outcome !== 'refused') results.push(result); });
    setNetwork(outcome !== 'offline');
    const refusedPhoto = results.find((r) => r.photoRefused);
    if (refusedPhoto) sayOutcome(refusedPhoto, 'sent_later');
    else if (results.length === 1) sayOutcome(results[0], 'sent_later');
    else if (results.length) {
      const numbers = results.map((r) => r.report.number).join(', ');
      say(() => gc.t('sent_later', { number: numbers }), 'good');
    }
    await showOutbox();
    if (results.length) loadMine();
  }

  function showNetwork() {
    const badge = $('network');
    badge.dataset.online = String(online);
    badge.textContent = gc.t(online ? 'online' : 'offline');
  }

  /** The network as last found: the badge shows it; coming back sends what is kept. */
  function setNetwork(value) {
    // an answer that was on its way when the browser lost its network does not make the page online again
    if (value && !navigator.onLine) value = false;
    const back = value && !online;
    online = value;
    showNetwork();
    if (!back) return;
    if (said && said.about === 'network') say(null); // "no network now" is no longer true
    sendWaiting();
  }

  /** Whether the server can be reached now, for a phone that says it has a network while requests fail:
   *  the categories, network first (the answer tells `gc:network`, and refreshes the list). */
  function probe() {
    if (navigator.onLine) loadCategories();
  }

  // -- my tasks: the level-1 cases the worker owns ----------------------------------------------------------

  /** The cases at level 1 in the worker's grid that are theirs to handle (open, acknowledged, rework). Acting
   *  needs the network: each action reads the case's ETag and sends it back (If-Match). */
  async function loadTasks() {
    const list = $('tasks-list');
    let result;
    try {
      result = await gc.api('GET', '/escalation/v1/cases?level=1&status=open,acknowledged,rework&page_size=100');
    } catch (e) { return; }
    if (!result.ok) return;
    const items = result.data.items.map(taskItem);
    list.replaceChildren(...(items.length ? items : [gc.el('li', { class: 'muted', text: gc.t('tasks_empty') })]));
    markOpened();
  }

  function taskItem(c) {
    const form = gc.el('div', { class: 'task-form' });
    const error = gc.el('p', { class: 'error', role: 'alert' });
    const button = (action, cls) => gc.el('button', { type: 'button', class: cls || 'secondary', 'data-action': action,
      text: gc.t('task_' + action), onclick: () => taskForm(c, action, form, error) });
    return gc.el('li', { 'data-case': c.id }, [
      gc.el('div', { class: 'line' }, [
        gc.el('span', { class: 'number case-number', text: c.number }),
        gc.el('span', { text: gc.t('status_' + c.status) }),
        gc.el('span', { class: 'muted', text: gc.duration(c.time_left) }),
      ]),
      gc.el('div', { class: 'small', text: (c.report && c.report.description) || '' }),
      gc.el('div', { class: 'actions-row' }, [
        c.status === 'open' || c.status === 'rework' ? button('acknowledge') : null,
        button('resolve', ''), button('escalate'),
      ]),
      form, error,
    ]);
  }

  /** The form of a task action: acknowledging needs none; resolving on the spot (就地解决) takes what was
   *  done and an after-photo; escalating (上报) a reason. */
  function taskForm(c, action, holder, error) {
    error.textContent = '';
    if (action === 'acknowledge') {
      act(c, 'acknowledge', {}, error);
      return;
    }
    const id = 'tf-' + action + '-' + c.id;
    const text = gc.el('textarea', { id, name: 'text', rows: 2, maxlength: 2000, required: true });
    const parts = [gc.el('label', { for: id, text: gc.t(action === 'resolve' ? 'task_what_was_done' : 'task_reason') }), text];
    let file = null;
    if (action === 'resolve') {
      file = gc.el('input', { id: id + '-photo', type: 'file', accept: 'image/jpeg,image/png', capture: 'environment' });
      parts.push(gc.el('label', { for: id + '-photo', text: gc.t('task_after_photo') }), file);
    }
    const form = gc.el('form', { 'data-form': action }, [...parts, gc.el('div', { class: 'actions-row' }, [
      gc.el('button', { type: 'submit', text: gc.t('task_' + action + '_confirm') }),
      gc.el('button', { type: 'button', class: 'secondary', text: gc.t('cancel'), onclick: () => holder.replaceChildren() }),
    ])]);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const value = text.value.trim();
      if (!value) { text.focus(); return; }
      form.querySelector('button[type=submit]').disabled = true;
      const body = action === 'resolve' ? { note: value } : { reason: value };
      if (file && file.files[0]) {
        const photo = await afterPhoto(c, file.files[0]);
        if (!photo.ok) {
          error.textContent = gc.problemText(photo);
          form.querySelector('button[type=submit]').disabled = false;
          return;
        }
        body.photos = [photo.data.id];
      }
      if (!(await act(c, action, body, error))) form.querySelector('button[type=submit]').disabled = false;
    });
    holder.replaceChildren(form);
    text.focus();
  }

  /** An after-photo of the fix (kind `after`) for the case's report: its id goes with the resolution. */
  async function afterPhoto(c, blob) {
    const data = new FormData();
    data.append(caps.photos || 'file', blob, blob.name || 'after.jpg');
    data.append('kind', 'after');
    const response = await fetch('/intake/v1/reports/' + encodeURIComponent(c.id) + '/photos', {
      method: 'POST', headers: { Authorization: 'Bearer ' + gc.token(), Accept: 'application/json' }, body: data });
    const json = (response.headers.get('Content-Type') || '').includes('json') ? await response.json() : null;
    return { ok: response.ok, status: response.status, data: json };
  }

  /** Take an action on a case with the ETag read just before; true when it was taken. */
  async function act(c, action, body, error) {
    try {
      const current = await gc.api('GET', '/escalation/v1/cases/' + encodeURIComponent(c.id));
      if (!current.ok) { error.textContent = gc.problemText(current); return false; }
      const result = await gc.api('POST', '/escalation/v1/cases/' + encodeURIComponent(c.id) + '/actions',
        { body: Object.assign({ action }, body), headers: { 'If-Match': current.headers.get('ETag') } });
      if (result.status === 412) { error.textContent = gc.t('task_conflict'); loadTasks(); return false; }
      if (!result.ok) { error.textContent = gc.problemText(result); return false; }
      say(() => gc.t('task_done_' + action, { number: c.number }), 'good');
    } catch (e) {
      error.textContent = gc.t('task_offline');
      return false;
    }
    await Promise.all([loadTasks(), loadMine(), loadVerify()]);
    return true;
  }

  // -- my reports and verification ----------------------------------------------------------------------

  async function loadMine() {
    const list = $('mine-list');
    const waiting = await GridcaseOutbox.waiting();
    const items = waiting.map((i) => gc.el('li', { class: 'waiting' }, [gc.el('div', { class: 'line' }, [
      gc.el('span', { class: 'number case-number', text: '—' }),
      gc.el('span', { class: 'muted', text: i.refused ? gc.t('refused', { error: i.refused }) : gc.t('mine_waiting') }),
    ]), gc.el('div', { class: 'small', text: i.body.description })]));
    let reports = [];
    try {
      if (caps.mine) {
        const result = await gc.api('GET', '/intake/v1/reports?mine=1');
        if (result.ok) reports = Array.isArray(result.data) ? result.data : (result.data.items || []);
      } else {
        const sent = (await GridcaseOutbox.sent()).sort((a, b) => (a.sent_at < b.sent_at ? 1 : -1)).slice(0, 20);
        reports = (await Promise.all(sent.map((s) => gc.api('GET', '/intake/v1/reports/' + encodeURIComponent(s.id)))))
          .filter((r) => r.ok).map((r) => r.data);
      }
      // where each stands and its time left are the report's own: intake follows its case (status, level,
      // deadline_at), so no case is read one by one (a report outside the worker's grid is no case of theirs)
      const now = Date.now();
      reports.forEach((r) => {
        // a report merged into (or linked to) another case follows that case: intake's status says where it is
        const due = r.deadline_at && !r.duplicate_of ? Date.parse(r.deadline_at) : NaN;
        items.push(gc.el('li', { 'data-report': r.id }, [
          gc.el('div', { class: 'line' }, [
            gc.el('span', { class: 'number case-number', text: r.number }),
            gc.el('span', { class: 'status', text: gc.t('status_' + r.status) }),
            r.level ? gc.el('span', { class: 'muted', text: gc.t('level_' + r.level) }) : null,
            Number.isNaN(due) || r.status === 'closed' ? null
              : gc.el('span', { class: 'muted time-left', text: gc.duration((due - now) / 1000) }),
          ]),
          gc.el('div', { class: 'small', text: r.description }),
          r.duplicate_of ? gc.el('div', { class: 'small muted', text: gc.t('mine_linked', { number: r.duplicate_of.number }) }) : null,
          r.status_note && !r.duplicate_of ? gc.el('div', { class: 'small muted', text: r.status_note }) : null,
        ]));
      });
    } catch (e) { /* offline: what is kept here is shown */ }
    list.replaceChildren(...(items.length ? items : [gc.el('li', { class: 'muted', text: gc.t('mine_empty') })]));
  }

  async function loadVerify() {
    const list = $('verify-list');
    let result;
    try { result = await gc.api('GET', '/escalation/v1/cases?status=verifying&page_size=100'); } catch (e) { return; }
    if (!result.ok) return;
    // only the cases this worker checks (a fix the worker made on the spot is checked by the station): each
    // item says so (can_verify) and what was done (resolution_note), so no case is read one by one
    const mine = result.data.items.filter((c) => c.can_verify !== false);
    const items = mine.map((c) => {
      const form = gc.el('form', { 'data-case': c.id }, [
        gc.el('label', { for: 'vn-' + c.id, text: gc.t('verify_note') }),
        gc.el('textarea', { id: 'vn-' + c.id, name: 'note', rows: 2, maxlength: 2000 }),
        gc.el('div', { class: 'actions-row' }, [
          gc.el('button', { type: 'submit', name: 'passed', value: 'true', text: gc.t('verify_passed') }),
          gc.el('button', { type: 'submit', name: 'passed', value: 'false', class: 'danger', text: gc.t('verify_failed') }),
        ]),
        gc.el('p', { class: 'error', role: 'alert' }),
      ]);
      form.addEventListener('submit', (e) => verify(e, c, form));
      return gc.el('li', {}, [
        gc.el('div', { class: 'line' }, [gc.el('span', { class: 'number case-number', text: c.number }), gc.el('span', { class: 'muted', text: gc.duration(c.time_left) })]),
        gc.el('div', { class: 'small', text: (c.report && c.report.description) || '' }),
        c.resolution_note ? gc.el('div', { class: 'small muted', text: gc.t('what_was_done') + ': ' + c.resolution_note }) : null,
        form,
      ]);
    });
    list.replaceChildren(...(items.length ? items : [gc.el('li', { class: 'muted', text: gc.t('verify_empty') })]));
  }

  async function verify(e, c, form) {
    e.preventDefault();
    const passed = e.submitter ? e.submitter.value === 'true' : true;
    const result = await gc.api('POST', '/intake/v1/cases/' + encodeURIComponent(c.id) + '/verification',
      { body: { passed, note: form.elements.note.value.trim() } }).catch(() => null);
    if (result && result.ok) {
      say(() => gc.t('verify_done') + ': ' + c.number, 'good');
      form.closest('li').remove();
    } else {
      form.querySelector('.error').textContent = result ? gc.problemText(result) : gc.t('offline');
    }
  }

  // -- the bell and the live feed -------------------------------------------------------------------------

  /** Read "my tasks" and "to verify" again soon: a burst of steps makes one read. */
  function listsSoon() {
    window.clearTimeout(listsTimer);
    listsTimer = window.setTimeout(listsNow, 500);
  }

  function listsNow() {
    window.clearTimeout(listsTimer);
    listsTimer = null;
    listsLoading = Promise.all([loadTasks(), loadVerify()]).finally(() => { listsLoading = null; });
    return listsLoading;
  }

  /** Each step of a case of the grid rings the bell (`gc:step`) and refreshes the lists it may change. */
  function onFeed(event) {
    if (event.name === 'case') {
      document.dispatchEvent(new CustomEvent('gc:step', { detail: JSON.parse(event.data).step }));
      listsSoon();
    } else if (event.name === 'removed' || event.name === 'reset') {
      listsSoon();
    }
  }

  /** The case opened from the bell, marked wherever it is listed (again after a list is read again). */
  function markOpened() {
    document.querySelectorAll('.items li.opened').forEach((li) => li.classList.remove('opened'));
    const place = opened && placeOf(opened);
    if (place) place.classList.add('opened');
  }

  function placeOf(id) {
    const quoted = '"' + CSS.escape(id) + '"';
    const found = document.querySelector('#tasks-list li[data-case=' + quoted + '], #verify-list form[data-case=' + quoted
      + '], #mine-list li[data-report=' + quoted + ']');
    return found && found.closest('li');
  }

  /** Show the case a notification names where it is on this page (a task, a case to verify, a report of
   *  mine: scrolled to, focused and marked); a case on none of these lists is said with its number and
   *  status. */
  async function openCase(id) {
    if (!$('bell-panel').hidden) $('bell-close').click();
    opened = id;
    // the lists as they are now: a read the feed asked for is waited for, so it cannot replace them after
    if (listsTimer !== null) await listsNow();
    else if (listsLoading) await listsLoading;
    let place = placeOf(id);
    if (!place) {
      await listsNow();
      place = placeOf(id);
    }
    if (place) {
      markOpened();
      place.setAttribute('tabindex', '-1');
      place.scrollIntoView({ block: 'center' });
      place.focus({ preventScroll: true });
      return;
    }
    try {
      const result = await gc.api('GET', '/escalation/v1/cases/' + encodeURIComponent(id));
      if (result.ok) say(() => gc.t('bell_case_now', { number: result.data.number, status: gc.t('status_' + result.data.status) }), '', true);
      else say(gc.problemText(result), 'bad', true);
    } catch (e) {
      say(() => gc.t('task_offline'), 'warn', true);
    }
  }

  // -- following my own reports ----------------------------------------------------------------------------

  //: what a worker hears of the cases they reported, beyond what every owner hears (`assigned`, which a
  //: return to the grid brings): their own in-app subscription (`user` alone), which they manage themselves
  const FOLLOW_EVENTS = ['rework', 'verification_due', 'urged'];
  let following = null; // the worker's own in-app subscription, or null

  function ownInApp(s) {
    return s.channel === 'inapp' && s.user === claims.sub && !s.unit && !s.role;
  }

  /** Whether the worker follows their reports: GET /escalation/v1/subscriptions (those they manage). */
  async function loadFollow() {
    const box = $('bell-follow');
    try {
      const result = await gc.api('GET', '/escalation/v1/subscriptions');
      if (!result.ok) return;
      following = result.data.items.find(ownInApp) || null;
      box.checked = !!following;
      box.disabled = false;
    } catch (e) { /* offline: the box stays as it was, and waits */ }
  }

  /** Follow (POST /escalation/v1/subscriptions, channel inapp, the worker's own) or stop following
   *  (DELETE …/{id}); a refusal or no network leaves the box as it was, with the reason. */
  async function setFollow() {
    const box = $('bell-follow');
    const want = box.checked;
    box.disabled = true;
    try {
      const result = want
        ? await gc.api('POST', '/escalation/v1/subscriptions', { body: { user: claims.sub, events: FOLLOW_EVENTS,
          channel: 'inapp', language: gc.lang } })
        : await gc.api('DELETE', '/escalation/v1/subscriptions/' + encodeURIComponent(following.id));
      if (!result.ok) throw new Error(gc.problemText(result));
      following = want ? result.data : null;
      $('bell-status').textContent = '';
    } catch (e) {
      box.checked = !want;
      $('bell-status').textContent = gc.t('bell_follow_failed', { error: online ? e.message : gc.t('offline') });
    } finally {
      box.disabled = false;
    }
  }

  // -- start ----------------------------------------------------------------------------------------------

  async function start(c) {
    claims = c;
    $('who').textContent = (c.sub || c.role) + (c.area ? ' · ' + c.area : '');
    $('report').addEventListener('submit', submit);
    $('r-category').addEventListener('change', () => fillSeverities(true));
    $('refresh').addEventListener('click', () => { loadMine(); loadVerify(); });
    $('refresh-tasks').addEventListener('click', loadTasks);
    document.addEventListener('gc:network', (e) => setNetwork(e.detail));
    window.addEventListener('online', () => { probe(); sendWaiting(); });
    window.addEventListener('offline', () => setNetwork(false));
    document.addEventListener('gc:language', () => { sayAgain(); fillCategories(); showLocation(); showNetwork(); showOutbox(); loadTasks(); loadMine(); loadVerify(); });
    document.addEventListener('gc:open-case', (e) => openCase(e.detail));
    $('bell-follow').addEventListener('change', setFollow);
    $('bell').addEventListener('click', loadFollow);
    if ('serviceWorker' in navigator) {
      navigator.serviceWorker.addEventListener('message', (e) => { if (e.data && e.data.type === 'open-case') openCase(e.data.case_id); });
    }
    showNetwork();
    watchGps();
    await capabilities();
    await loadCategories();
    await drawMap();
    showLocation();
    await showOutbox();
    sendWaiting();
    await Promise.all([loadTasks(), loadMine(), loadVerify()]);
    gcFeed.follow({ onEvent: onFeed });
    loadFollow();
    const opened = /(?:^|[#&])case=([^&]+)/.exec(window.location.hash); // a tapped desktop notification
    if (opened) openCase(decodeURIComponent(opened[1]));
    document.body.dataset.ready = 'true';
    let tick = 0;
    window.setInterval(() => {
      tick += 1;
      if (!online) probe(); // a network the phone claims, which failed: is the server back?
      else if (tick % 3 === 0) sendWaiting();
    }, 5000);
  }

  document.addEventListener('DOMContentLoaded', () => {
    gc.init({ persistToken: true });
    if ('serviceWorker' in navigator) navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => {});
    gc.signIn(start);
  });
}());
