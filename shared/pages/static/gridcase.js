/* What every gridcase page shares: its language, the sign-in, calls to the API, times and durations.
 *
 * The page's message catalogue is a JSON block in the page (<script type="application/json"
 * id="gc-messages">, {"zh": {...}, "en": {...}}); every element with a static label carries
 * data-i18n="key" (text) or data-i18n-attr="attribute:key,..." (placeholder, aria-label, title), so a
 * language switch relabels the whole page without a reload. The chosen language (the switch's, or an address's
 * ?lang=zh|en) is kept in localStorage.
 *
 * The token is a bearer JWT: pasted into the sign-in form or passed as #token=... in a sign-in link (a
 * fragment never reaches a server or its logs), then kept in sessionStorage (the board, the desk) or
 * localStorage (the phone page, which must survive a restart while reports wait to be sent).
 *
 * Every time is shown in the city's time zone, never the browser's (a laptop set to another zone reads
 * the same deadline as the desk and the wall): every API answer names it (Gridcase-Time-Zone), kept in
 * localStorage for a page that starts offline.
 */
(function () {
  'use strict';
  const LANG_KEY = 'gridcase.lang';
  const TOKEN_KEY = 'gridcase.token';
  const ZONE_KEY = 'gridcase.zone';
  const catalogue = JSON.parse(document.getElementById('gc-messages').textContent);
  let lang = pickLanguage();
  let store = window.sessionStorage;
  let zone = knownZone(window.localStorage.getItem(ZONE_KEY));

  /** `name` if the browser knows it as an IANA time zone, else null. */
  function knownZone(name) {
    if (!name) return null;
    try {
      new Intl.DateTimeFormat('en', { timeZone: name }); // eslint-disable-line no-new
      return name;
    } catch (e) {
      return null;
    }
  }

  /** Whether `code` names one of the catalogue's languages ("zh", "en"; not "constructor"). */
  function known(code) {
    return !!code && Object.prototype.hasOwnProperty.call(catalogue, code);
  }

  /** The page's language: the address's `?lang=zh|en` (a wall screen's address is set once, by whoever
   *  sets up the screen), kept as the switch button's choice is; else the choice kept earlier; else the
   *  language the server rendered for the browser (Accept-Language). An unknown `lang` is ignored. */
  function pickLanguage() {
    const asked = new URLSearchParams(window.location.search).get('lang');
    if (known(asked)) {
      window.localStorage.setItem(LANG_KEY, asked);
      return asked;
    }
    const chosen = window.localStorage.getItem(LANG_KEY);
    if (known(chosen)) return chosen;
    return document.documentElement.lang.startsWith('en') ? 'en' : 'zh';
  }

  /** The message `key` in the current language, with {name} replaced from `vars`; with a number `n` in
   *  `vars`, the key's plural form (`key_one`, …, by Intl.PluralRules) where the catalogue has one. */
  function t(key, vars) {
    if (vars && typeof vars.n === 'number') {
      const form = key + '_' + new Intl.PluralRules(lang === 'zh' ? 'zh-CN' : 'en').select(vars.n);
      if (catalogue[lang][form] !== undefined) key = form;
    }
    let text = catalogue[lang][key];
    if (text === undefined) text = catalogue.zh[key] !== undefined ? catalogue.zh[key] : key;
    if (vars) text = text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
    return text;
  }

  /** Relabel every element under `root` that names a message. */
  function relabel(root) {
    (root || document).querySelectorAll('[data-i18n]').forEach((el) => { el.textContent = t(el.dataset.i18n); });
    (root || document).querySelectorAll('[data-i18n-attr]').forEach((el) => {
      el.dataset.i18nAttr.split(',').forEach((pair) => {
        const [attr, key] = pair.split(':');
        el.setAttribute(attr.trim(), t(key.trim()));
      });
    });
  }

  function applyLanguage() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.title = t('title');
    relabel(document);
    document.querySelectorAll('[data-lang-switch]').forEach((button) => {
      button.textContent = lang === 'zh' ? 'English' : '中文';
      button.setAttribute('lang', lang === 'zh' ? 'en' : 'zh-CN');
      button.setAttribute('title', t('switch_language'));
    });
    document.dispatchEvent(new CustomEvent('gc:language', { detail: lang }));
  }

  function setLanguage(next) {
    lang = known(next) ? next : 'zh';
    window.localStorage.setItem(LANG_KEY, lang);
    applyLanguage();
  }

  // -- sign-in -------------------------------------------------------------------------------------

  function token() { return store.getItem(TOKEN_KEY); }

  function setToken(value) {
    if (value) store.setItem(TOKEN_KEY, value.trim()); else store.removeItem(TOKEN_KEY);
  }

  /** The token's claims (role, area, sub, exp), read without checking: the server checks. */
  function claims(value) {
    try {
      const part = (value || token() || '').split('.')[1];
      const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
      return JSON.parse(decodeURIComponent(Array.from(json, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join('')));
    } catch (e) {
      return null;
    }
  }

  /** A sign-in link's token (#token=…) is kept and taken out of the address; the rest of the fragment
   *  (#token=…&case=NUMBER) stays for the page. */
  function tokenFromLink() {
    const match = /(?:^|[#&])token=([^&]+)/.exec(window.location.hash);
    if (match) {
      setToken(decodeURIComponent(match[1]));
      const rest = window.location.hash.slice(1).split('&').filter((part) => !part.startsWith('token=')).join('&');
      window.history.replaceState(null, '', window.location.pathname + window.location.search + (rest ? '#' + rest : ''));
    }
  }

  /** Wire the sign-in form and the sign-out button; `onSignedIn(claims)` runs when a usable token is there. */
  function signIn(onSignedIn) {
    const form = document.getElementById('signin');
    const screen = document.getElementById('signin-screen');
    const main = document.getElementById('main');
    const show = () => {
      const c = claims();
      const signedIn = !!(c && c.role && (!c.exp || c.exp * 1000 > Date.now()));
      screen.hidden = signedIn;
      main.hidden = !signedIn;
      document.querySelectorAll('[data-signed-in]').forEach((el) => { el.hidden = !signedIn; });
      const who = document.getElementById('who');
      if (who && signedIn) who.textContent = (c.sub || c.role) + (c.area ? ' · ' + c.area : '');
      if (signedIn) onSignedIn(c);
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = form.elements.token.value.trim();
      const c = claims(value);
      const error = document.getElementById('signin-error');
      if (!c || !c.role) {
        error.textContent = t('signin_invalid');
        return;
      }
      error.textContent = '';
      setToken(value);
      form.reset();
      show();
    });
    document.querySelectorAll('[data-sign-out]').forEach((button) => button.addEventListener('click', () => {
      setToken(null);
      window.location.reload();
    }));
    show();
  }

  // -- the API -------------------------------------------------------------------------------------

  /** What a call found of the network, told to the page as a `gc:network` event (detail: true when the
   *  server answered, false when the request failed or only a service worker's cached copy came back,
   *  marked `Gridcase-Cached`): the one source a page's network indicator reads. */
  function heard(online) {
    document.dispatchEvent(new CustomEvent('gc:network', { detail: online }));
  }

  /** Call the API with the token, asking for the page's language (Accept-Language). Resolves to {ok, status,
   *  data, headers}; rejects only when the network fails (offline). A 401 signs out. Each call says what it found of the network (`gc:network`).
   *  `options.started`: the promise of a fetch of the same call a page started earlier (with the same token
   *  and headers), read here in place of a new request. */
  async function api(method, path, options) {
    const opts = options || {};
    // the server's words (problem details, the system's notes) in the page's language, not the browser's
    const headers = Object.assign({ Accept: opts.accept || 'application/json',
      'Accept-Language': lang === 'zh' ? 'zh-CN,zh;q=0.9' : 'en' }, opts.headers || {});
    if (token()) headers.Authorization = 'Bearer ' + token();
    let body;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await (opts.started || fetch(path, { method, headers, body, cache: 'no-store' }));
    } catch (e) {
      heard(false);
      throw e;
    }
    heard(!response.headers.get('Gridcase-Cached'));
    const named = knownZone(response.headers.get('Gridcase-Time-Zone'));
    if (named && named !== zone) {
      zone = named;
      window.localStorage.setItem(ZONE_KEY, zone);
    }
    const type = response.headers.get('Content-Type') || '';
    let data = null;
    if (opts.raw) data = await response.blob();
    else if (type.includes('json')) data = await response.json();
    else data = await response.text();
    if (response.status === 401 && token() && !opts.keepToken) {
      setToken(null);
      window.location.reload();
    }
    return { ok: response.ok, status: response.status, data, headers: response.headers };
  }

  /** A problem+json answer in words: its detail, or its field errors. */
  function problemText(result) {
    const d = result && result.data;
    if (d && d.errors && d.errors.length) return d.errors.map((e) => e.field + ': ' + e.detail).join('; ');
    if (d && (d.detail || d.title)) return d.detail || d.title;
    return t('error_status', { status: result ? result.status : '?' });
  }

  // -- words for times -----------------------------------------------------------------------------

  /** Seconds as "2 h 05 min" / "2小时05分", under a minute as "16 s" / "16秒"; negative as late. */
  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '—';
    const late = seconds < 0;
    let s = Math.abs(Math.round(seconds));
    if (s < 60) return late ? t('late_by', { time: t('unit_seconds', { n: s }) }) : t('unit_seconds', { n: s });
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60);
    const parts = [];
    if (d) parts.push(t('unit_days', { n: d }));
    if (h || d) parts.push(t('unit_hours', { n: h }));
    parts.push(t('unit_minutes', { n: d ? String(m).padStart(2, '0') : m }));
    const text = parts.join(lang === 'zh' ? '' : ' ');
    return late ? t('late_by', { time: text }) : text;
  }

  /** An ISO 8601 time as a short date and time in the city's time zone (the browser's only until the
   *  first API answer has named the city's): 2026/12/5 22:07 in Chinese; in English the month by name,
   *  5 Dec 2026, 22:07, which no reader takes for 12 May, whatever order of day and month is theirs. */
  function time(iso) {
    if (!iso) return '—';
    return new Date(iso).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', lang === 'zh'
      ? { dateStyle: 'short', timeStyle: 'short', timeZone: zone || undefined }
      : { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
        timeZone: zone || undefined });
  }

  /** A new element: el('li', {class: 'x', text: '...'}, [children]). */
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === 'text') node.textContent = v;
      else if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    });
    (children || []).forEach((c) => { if (c) node.append(c); });
    return node;
  }

  /** `text` as nodes for an element's children, each case number in it (20261205-000042) in a
   *  `.case-number` element (gridcase.css), which a line never breaks after its hyphen. */
  function numbered(text) {
    return String(text).split(/(\d{8}-\d+)/).map((part, i) => (i % 2
      ? el('span', { class: 'case-number', text: part }) : part)).filter((part) => part !== '');
  }

  /** A row of GET /escalation/v1/cases/rows (its `columns`, one of its `rows`, its `names`: area id →
   *  name) as a case object with the fields the list's pages read: every column by name, and, shaped as
   *  a case of GET /escalation/v1/cases is, `areas` ({grid, station, subcenter, hq}: {id, name} or null),
   *  `owner` ({level, area_id, area_name}) and `report` ({location: {lon, lat} degrees WGS84, reported_at}).
   *  The board and the wall keep their cases so. */
  function caseFromRow(columns, row, names) {
    const c = {};
    for (let i = 0; i < columns.length; i += 1) c[columns[i]] = row[i];
    const ref = (id) => (id === null || id === undefined ? null : { id, name: names[id] || id });
    c.areas = { grid: ref(c.grid), station: ref(c.station), subcenter: ref(c.subcenter), hq: ref(c.hq) };
    c.owner = { level: c.level, area_id: c.owner, area_name: names[c.owner] || c.owner };
    c.report = { location: { lon: c.lon, lat: c.lat }, reported_at: c.reported_at };
    return c;
  }

  function init(options) {
    store = options && options.persistToken ? window.localStorage : window.sessionStorage;
    tokenFromLink();
    document.querySelectorAll('[data-lang-switch]').forEach((button) => button.addEventListener('click', () => {
      setLanguage(lang === 'zh' ? 'en' : 'zh');
    }));
    applyLanguage();
  }

  window.gc = {
    init, t, relabel, setLanguage, get lang() { return lang; }, token, setToken, claims, signIn, api,
    problemText, duration, time, el, numbered, caseFromRow, get zone() { return zone; },
  };
}());
