/* The board's first requests, started as the page's head is read, while the stylesheets, Leaflet and the
 * page's other scripts still load and run (board.js takes their answers when it signs in:
 * window.gcFirstRows, once):
 *
 *   1. GET /escalation/v1/cases/rows?limit=FIRST_SCREEN — the first screen: the cases with the least time
 *      left, in the order the list shows them by default, and how many there are in all;
 *   2. GET /escalation/v1/cases/rows — every open case of the caller's area (the list, its counts, the
 *      map's pins, the live feed's starting point), asked once the first answer is in, so the server
 *      answers the small request first; not asked when the first answer held every case.
 *
 * A department's board sorts by its own part's deadline, not the case's: it asks only for the whole list.
 * The token is the one gridcase.js will use: a sign-in link's #token=… (gridcase.js keeps it and takes it
 * out of the address at start), else the tab's kept one (sessionStorage). Without a token nothing is sent;
 * board.js asks for the rows itself when the token it signs in with is not the one these requests carried
 * (the sign-in form), or when this script did not run. A failed request (offline) is board.js's to report. */
(function () {
  'use strict';
  const FIRST_SCREEN = 100; // rows: more than a wall screen shows, with the rows drawn around the window
  const ROWS = '/escalation/v1/cases/rows';
  let token = null;
  let role = null;
  try {
    const match = /(?:^|[#&])token=([^&]+)/.exec(window.location.hash);
    token = ((match ? decodeURIComponent(match[1]) : window.sessionStorage.getItem('gridcase.token')) || '').trim();
    role = JSON.parse(window.atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).role;
  } catch (e) {
    return; // a malformed link, token or no storage: board.js asks as usual
  }
  if (!token) return;
  let lang = null;
  try { lang = window.localStorage.getItem('gridcase.lang'); } catch (e) { /* the page's language */ }
  if (lang !== 'zh' && lang !== 'en') lang = document.documentElement.lang.startsWith('en') ? 'en' : 'zh';
  const headers = { Accept: 'application/json', 'Accept-Language': lang === 'zh' ? 'zh-CN,zh;q=0.9' : 'en',
    Authorization: 'Bearer ' + token };
  const get = (path) => window.fetch(path, { headers, cache: 'no-store' });
  window.performance.mark('gc-rows-request');
  const first = role === 'department' ? null : get(ROWS + '?limit=' + FIRST_SCREEN);
  // null when the first page holds every case (a board of at most FIRST_SCREEN): it is the whole list
  const whole = !first ? get(ROWS) : first.then((r) => (!r.ok ? get(ROWS) : r.clone().json().then(
    (d) => (d.rows.length >= d.total ? null : get(ROWS)), () => get(ROWS))), () => get(ROWS));
  // read (and a failure reported) by board.js, not an unhandled rejection here
  if (first) first.catch(() => {});
  whole.catch(() => {});
  window.gcFirstRows = { token, first, whole };
}());
