/* The supervisor's desk: closure-time statistics (GET /escalation/v1/stats/closure-times) as charts, a
 * ranking of units and a table, the table as the API's own CSV (format=csv), a printable view, and the
 * what-if replay (POST /escalation/v1/stats/replay). Where the server does not offer an endpoint yet,
 * the page says so instead of showing empty charts. */
(function () {
  'use strict';
  const STATS = '/escalation/v1/stats/closure-times';
  const REPLAY = '/escalation/v1/stats/replay';
  const RATES = ['closure_rate', 'on_time_rate', 'rework_rate'];
  const RATE_COLUMNS = ['closure_rate', 'on_time_rate', 'on_time_rate_with_extensions', 'on_time_rate_final', 'rework_rate', 'extension_rate', 'escalation_rate'];
  const TIMES = ['time_to_acknowledge', 'time_to_resolve', 'time_to_close'];
  const LEVELS = ['1', '2', '3', '4'];
  // group_by=department: a department's assignments (派遣) rather than cases
  const DEPARTMENT_RATES = ['on_time_rate', 'decline_rate'];
  const DEPARTMENT_COUNTS = ['assigned', 'acknowledged', 'done', 'declined', 'on_time', 'overdue'];
  const DEPARTMENT_TIMES = ['time_to_accept', 'time_to_feedback'];
  const byDepartment = () => data && data.group_by === 'department';
  const COLOURS = ['#0b57a4', '#1b6e2e', '#b3141b', '#8a4b00', '#6a1b9a'];
  let data = null;
  let charts = [];
  let lastReplay = null;

  const $ = (id) => document.getElementById(id);

  function query() {
    const f = $('query').elements;
    const params = { group_by: f.group_by.value, period: f.period.value, from: f.from.value, to: f.to.value };
    // departments are counted by the day a case was assigned to them: the cohort is theirs
    if (f.group_by.value !== 'department') params.by = f.by.value;
    return new URLSearchParams(params);
  }

  const areaNames = {}; // area level → {id: name}, from dispatch, for the area groupings

  async function loadAreaNames(level) {
    if (areaNames[level] || !['grid', 'station', 'subcenter'].includes(level)) return;
    const result = await gc.api('GET', '/dispatch/v1/areas?level=' + level).catch(() => null);
    areaNames[level] = {};
    if (result && result.ok) result.data.features.forEach((f) => { areaNames[level][f.properties.id] = f.properties.name; });
  }

  function groupOf(row) {
    const key = data.group_by;
    if (['grid', 'station', 'subcenter'].includes(key)) {
      const id = row.area_id || row[key];
      return row.area_name || (areaNames[key] || {})[id] || id || '—';
    }
    if (key === 'category' && categories[row.category]) return gc.lang === 'zh' ? categories[row.category].zh : categories[row.category].en;
    if (key === 'department' && departments[row.department]) return gc.lang === 'zh' ? departments[row.department].zh : departments[row.department].en;
    return row[key] !== undefined && row[key] !== null ? String(row[key]) : '—';
  }

  const categories = {};
  const departments = {};

  async function loadDepartments() {
    const result = await gc.api('GET', '/dispatch/v1/departments').catch(() => null);
    if (result && result.ok) result.data.departments.forEach((d) => { departments[d.id] = d; });
  }

  async function loadCategories() {
    const result = await gc.api('GET', '/intake/v1/categories').catch(() => null);
    if (result && result.ok) result.data.forEach((c) => { categories[c.code] = c; });
  }

  const percent = (v) => (v === null || v === undefined ? '—' : (v * 100).toFixed(1) + ' %');
  const hours = (s) => (s === null || s === undefined ? null : Math.round((s / 3600) * 10) / 10);

  function status(text, kind) {
    $('stats-status').replaceChildren(text ? gc.el('p', { class: 'notice ' + (kind || ''), text }) : '');
  }

  async function load() {
    status(gc.t('loading'));
    const result = await gc.api('GET', STATS + '?' + query());
    if (result.status === 404 || result.status === 405 || result.status === 501) {
      data = null;
      $('stats-body').hidden = true;
      status(gc.t('unavailable'), 'warn');
      document.body.dataset.stats = 'unavailable';
      return;
    }
    if (!result.ok) {
      status(gc.t('load_failed', { error: gc.problemText(result) }), 'bad');
      return;
    }
    await loadAreaNames(result.data.group_by);
    data = result.data;
    document.body.dataset.stats = 'loaded';
    status(data.rows.length ? '' : gc.t('no_rows'));
    $('stats-body').hidden = !data.rows.length;
    const periods = Array.from(new Set(data.rows.map((r) => r.period_start))).sort().reverse();
    $('period-shown').replaceChildren(...periods.map((p) => gc.el('option', { value: p, text: p })));
    render();
  }

  function render() {
    if (!data) return;
    $('time-zone').textContent = data.time_zone ? gc.t('time_zone', { zone: data.time_zone }) : '';
    const period = $('period-shown').value;
    const rows = data.rows.filter((r) => r.period_start === period);
    drawCharts(rows);
    drawRanking(rows);
    drawTable(data.rows);
  }

  function drawCharts(rows) {
    charts.forEach((c) => c.destroy());
    const labels = rows.map(groupOf);
    const rates = byDepartment() ? DEPARTMENT_RATES : RATES;
    const closing = byDepartment() ? 'time_to_feedback' : 'time_to_close';
    const common = { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: 'bottom' } } };
    charts = [
      new Chart($('chart-rates'), {
        type: 'bar',
        data: { labels, datasets: rates.map((k, i) => ({ label: gc.t('col_' + k), backgroundColor: COLOURS[i], data: rows.map((r) => (r[k] === null ? null : r[k] * 100)) })) },
        options: Object.assign({}, common, { scales: { y: { min: 0, max: 100, ticks: { callback: (v) => v + '%' } } } }),
      }),
      new Chart($('chart-times'), {
        type: 'bar',
        data: { labels, datasets: [
          { label: gc.t('median'), backgroundColor: COLOURS[0], data: rows.map((r) => hours((r[closing] || {}).median)) },
          { label: gc.t('p90'), backgroundColor: COLOURS[3], data: rows.map((r) => hours((r[closing] || {}).p90)) },
        ] },
        options: Object.assign({}, common, { scales: { y: { min: 0 } } }),
      }),
    ];
  }

  function drawRanking(rows) {
    let by = $('rank-by').value;
    if (byDepartment() && !['on_time_rate', 'decline_rate', 'overdue'].includes(by)) by = 'on_time_rate';
    const volume = byDepartment() ? 'assigned' : 'opened';
    const worseHigh = ['rework_rate', 'extension_rate', 'escalation_rate', 'overdue', 'decline_rate'].includes(by);
    const ranked = rows.filter((r) => r[by] !== null && r[by] !== undefined)
      .sort((a, b) => (worseHigh ? a[by] - b[by] : b[by] - a[by]));
    // Equal values share a rank, as the API's rank_by: 1 + how many groups are strictly better.
    const better = (a, b) => (worseHigh ? a < b : a > b);
    const rankOf = (r) => 1 + ranked.filter((o) => better(o[by], r[by])).length;
    $('ranking').replaceChildren(
      gc.el('thead', {}, [gc.el('tr', {}, [
        gc.el('th', { scope: 'col', class: 'num', text: gc.t('rank') }), gc.el('th', { scope: 'col', class: 'group', text: gc.t('col_group') }),
        gc.el('th', { scope: 'col', class: 'num', text: gc.t('col_' + by) }), gc.el('th', { scope: 'col', class: 'num', text: gc.t('col_' + volume) }),
      ])]),
      gc.el('tbody', {}, ranked.length ? ranked.map((r) => gc.el('tr', {}, [
        gc.el('td', { class: 'num', text: rankOf(r) }), gc.el('td', { class: 'group', text: groupOf(r) }),
        gc.el('td', { class: 'num', text: by === 'overdue' ? r[by] : percent(r[by]) }), gc.el('td', { class: 'num', text: r[volume] }),
      ])) : [gc.el('tr', {}, [gc.el('td', { colspan: 4, class: 'muted', text: gc.t('ranking_empty') })])]),
    );
  }

  function drawDepartmentTable(rows) {
    const head = [gc.t('col_group'), gc.t('col_period'), ...DEPARTMENT_COUNTS.map((k) => gc.t('col_' + k)),
      ...DEPARTMENT_RATES.map((k) => gc.t('col_' + k)),
      ...DEPARTMENT_TIMES.flatMap((k) => [gc.t('col_' + k) + ' ' + gc.t('median'), gc.t('col_' + k) + ' ' + gc.t('p90')])];
    $('table').replaceChildren(
      gc.el('thead', {}, [gc.el('tr', {}, head.map((h, i) => gc.el('th', { scope: 'col', class: i > 1 ? 'num' : i === 0 ? 'group' : '', text: h })))]),
      gc.el('tbody', {}, rows.map((r) => gc.el('tr', {}, [
        gc.el('td', { class: 'group', text: groupOf(r) }), gc.el('td', { text: r.period_start || '' }),
        ...DEPARTMENT_COUNTS.map((k) => gc.el('td', { class: 'num', text: r[k] })),
        ...DEPARTMENT_RATES.map((k) => gc.el('td', { class: 'num', text: percent(r[k]) })),
        ...DEPARTMENT_TIMES.flatMap((k) => ['median', 'p90'].map((q) => gc.el('td', { class: 'num', text: gc.duration((r[k] || {})[q]) }))),
      ]))),
    );
  }

  function drawTable(rows) {
    if (byDepartment()) { drawDepartmentTable(rows); return; }
    const head = [gc.t('col_group'), gc.t('col_period'), gc.t('col_opened'), gc.t('col_closed'),
      ...RATE_COLUMNS.map((k) => gc.t('col_' + k)), gc.t('col_overdue'),
      ...TIMES.flatMap((k) => [gc.t('col_' + k) + ' ' + gc.t('median'), gc.t('col_' + k) + ' ' + gc.t('p90')]),
      ...LEVELS.map((n) => gc.t('col_time_at_level', { level: n })),
      ...LEVELS.map((n) => gc.t('col_calendar_at_level', { level: n }))];
    $('table').replaceChildren(
      gc.el('thead', {}, [gc.el('tr', {}, head.map((h, i) => gc.el('th', { scope: 'col', class: i > 1 ? 'num' : i === 0 ? 'group' : '', text: h })))]),
      gc.el('tbody', {}, rows.map((r) => gc.el('tr', {}, [
        gc.el('td', { class: 'group', text: groupOf(r) }), gc.el('td', { text: r.period_start || '' }),
        gc.el('td', { class: 'num', text: r.opened }), gc.el('td', { class: 'num', text: r.closed }),
        ...RATE_COLUMNS.map((k) => gc.el('td', { class: 'num', text: percent(r[k]) })),
        gc.el('td', { class: 'num', text: r.overdue }),
        ...TIMES.flatMap((k) => ['median', 'p90'].map((q) => gc.el('td', { class: 'num', text: gc.duration((r[k] || {})[q]) }))),
        ...LEVELS.map((n) => gc.el('td', { class: 'num', text: gc.duration(((r.time_at_level || {})[n] || {}).median) })),
        ...LEVELS.map((n) => gc.el('td', { class: 'num', text: gc.duration(((r.calendar_at_level || {})[n] || {}).median) })),
      ]))),
    );
  }

  async function downloadCsv() {
    const result = await gc.api('GET', STATS + '?' + query() + '&format=csv&lang=' + gc.lang, { raw: true, accept: 'text/csv' });
    if (!result.ok) { status(gc.t('error_status', { status: result.status }), 'bad'); return; }
    const f = $('query').elements;
    const named = /filename="([^"]+)"/.exec(result.headers.get('Content-Disposition') || '');
    const name = named ? named[1] : 'closure-times-' + f.group_by.value + '-' + f.from.value + '-' + f.to.value + '.csv';
    const link = gc.el('a', { href: URL.createObjectURL(result.data), download: name });
    document.body.append(link);
    link.click();
    link.remove();
  }

  // -- what-if replay ------------------------------------------------------------------------------------

  async function replay(e) {
    e.preventDefault();
    const out = $('replay-result');
    const file = $('replay-file').files[0];
    if (!file) { out.replaceChildren(gc.el('p', { class: 'error', text: gc.t('replay_no_file') })); return; }
    const f = $('query').elements;
    const result = await gc.api('POST', REPLAY, { body: { policy: await file.text(), from: f.from.value, to: f.to.value } });
    if (result.status === 404 || result.status === 405 || result.status === 501) {
      out.replaceChildren(gc.el('p', { class: 'notice warn', text: gc.t('replay_unavailable') }));
      return;
    }
    if (!result.ok) { out.replaceChildren(gc.el('p', { class: 'error', text: gc.problemText(result) })); return; }
    lastReplay = result.data;
    drawReplay();
  }

  /** The measures of one side of a replay ({escalations: {"1": n, …}, overdue, closed_on_time}) as rows. */
  function measures(side) {
    const out = [];
    Object.keys((side && side.escalations) || {}).sort().forEach((level) => {
      out.push([gc.t('replay_escalations', { level }), side.escalations[level]]);
    });
    ['overdue', 'closed_on_time'].forEach((k) => { if (side && k in side) out.push([gc.t('replay_' + k), side[k]]); });
    return out;
  }

  /** The replay's answer side by side: the total, then each unit and category, current policy | new policy. */
  function drawReplay() {
    if (!lastReplay) return;
    const total = lastReplay.total || {};
    const current = total.current || {};
    const next = total.new || {};
    const now = measures(current);
    const then = new Map(measures(next));
    const head = (cells) => gc.el('thead', {}, [gc.el('tr', {}, cells.map((c, i) => gc.el('th', { scope: 'col', class: i ? 'num' : '', text: c })))]);
    const totals = gc.el('table', { id: 'replay-table' }, [
      head([gc.t('replay_measure'), gc.t('replay_current'), gc.t('replay_proposed')]),
      gc.el('tbody', {}, now.map(([label, value]) => gc.el('tr', {}, [gc.el('td', { text: label }),
        gc.el('td', { class: 'num', text: value }), gc.el('td', { class: 'num', text: then.has(label) ? then.get(label) : '—' })]))),
    ]);
    const rows = lastReplay.rows || [];
    const detail = gc.el('table', { id: 'replay-rows' }, [
      head([gc.t('replay_unit'), gc.t('replay_category'), gc.t('replay_cases'), gc.t('replay_current'), gc.t('replay_proposed')]),
      gc.el('tbody', {}, rows.map((r) => gc.el('tr', {}, [
        gc.el('td', { text: r.unit || '—' }), gc.el('td', { text: categories[r.category] ? (gc.lang === 'zh' ? categories[r.category].zh : categories[r.category].en) : (r.category || '—') }),
        gc.el('td', { class: 'num', text: r.cases }),
        gc.el('td', { class: 'num', text: measures(r.current).map(([l, v]) => l + ' ' + v).join(' · ') }),
        gc.el('td', { class: 'num', text: measures(r.new).map(([l, v]) => l + ' ' + v).join(' · ') }),
      ]))),
    ]);
    $('replay-result').replaceChildren(gc.el('div', { class: 'table-wrap', tabindex: '0' }, [totals]), gc.el('div', { class: 'table-wrap', tabindex: '0' }, [detail]));
  }

  function start() {
    Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
    // Dates are the city's, and its today may be the UTC date + 1 (east of UTC, after 10:00 UTC at +14 h):
    // the excluded last day is the UTC date + 2, so the default range always holds the city's today
    // (a case filed at 00:30 on the 1st in Shanghai is still in it at 16:30 UTC on the 30th).
    const to = new Date(Date.now() + 2 * 86400000);
    const from = new Date(to.getTime() - 92 * 86400000);
    $('q-to').value = to.toISOString().slice(0, 10);
    $('q-from').value = from.toISOString().slice(0, 10);
    $('query').addEventListener('submit', (e) => { e.preventDefault(); load(); });
    $('rank-by').addEventListener('change', render);
    $('period-shown').addEventListener('change', render);
    $('csv').addEventListener('click', downloadCsv);
    $('print').addEventListener('click', () => window.print());
    $('replay-form').addEventListener('submit', replay);
    document.addEventListener('gc:language', () => {
      if (data) render();
      else if (document.body.dataset.stats === 'unavailable') status(gc.t('unavailable'), 'warn');
      drawReplay();
    });
    Promise.all([loadCategories(), loadDepartments()]).then(load).then(() => { document.body.dataset.ready = 'true'; });
    gcHotspots.start(); // reports per grid and category over the period, on the grid polygons
  }

  document.addEventListener('DOMContentLoaded', () => {
    gc.init();
    gc.signIn(start);
  });
}());
