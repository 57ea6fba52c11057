/* The supervisor's desk: closure-time statistics (GET /escalation/v1/stats/closure-times) as charts, a
 * trend of each measure over the periods, a ranking of units by name and a table, the table as the API's
 * own CSV (format=csv), a printable report (desk.css's print stylesheet: the report's header with the
 * range and time zone, its charts and tables, no form controls), and the what-if replay
 * (POST /escalation/v1/stats/replay) from a form that changes the limits of chosen categories and levels
 * (the running policy's limits from GET /escalation/v1/stats/replay) or sends a whole policy file; the
 * server's problem details are shown next to the field they name. Where the server does not offer an
 * endpoint yet, the page says so instead of showing empty charts. */
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
  const COLOURS = ['#0b57a4', '#1b6e2e', '#b3141b', '#8a4b00', '#6a1b9a', '#00695c', '#ad1457', '#37474f'];
  const DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3]]; // lines told apart without colour, too
  // measures whose trend the desk draws: kind count, rate (0–1, shown in %) or time (seconds, shown in hours)
  const TREND_MEASURES = [['on_time_rate', 'rate'], ['on_time_rate_final', 'rate'], ['on_time_rate_with_extensions', 'rate'],
    ['closure_rate', 'rate'], ['rework_rate', 'rate'], ['extension_rate', 'rate'], ['escalation_rate', 'rate'],
    ['opened', 'count'], ['closed', 'count'], ['overdue', 'count'],
    ['time_to_acknowledge', 'time'], ['time_to_resolve', 'time'], ['time_to_close', 'time']];
  const DEPARTMENT_TREND_MEASURES = [['on_time_rate', 'rate'], ['decline_rate', 'rate'], ['assigned', 'count'],
    ['done', 'count'], ['declined', 'count'], ['overdue', 'count'], ['time_to_accept', 'time'], ['time_to_feedback', 'time']];
  const TREND_DEFAULT_UNITS = 5;
  const TREND_MAX_LISTED = 60; // units offered to pick from, the busiest first
  let data = null;
  let trendChart = null;
  let trendChosen = null; // the group keys drawn in the trend (null: the busiest, by default)
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

  /** The stable key of a row's group (an area id, a category code, …): what the trend's lines follow. */
  function keyOf(row) {
    const key = data.group_by;
    if (['grid', 'station', 'subcenter'].includes(key)) return row.area_id || row[key] || '';
    return row[key] === undefined || row[key] === null ? '' : String(row[key]);
  }

  function groupOf(row) {
    const key = data.group_by;
    if (['grid', 'station', 'subcenter'].includes(key)) {
      const id = row.area_id || row[key];
      return row.area_name || (areaNames[key] || {})[id] || id || '—';
    }
    if (key === 'category' && categories[row.category]) return gc.lang === 'zh' ? categories[row.category].zh : categories[row.category].en;
    if (key === 'department' && departments[row.department]) return gc.lang === 'zh' ? departments[row.department].zh : departments[row.department].en;
    if (key === 'severity' && row.severity) return severityName(row.severity);
    return row[key] !== undefined && row[key] !== null ? String(row[key]) : '—';
  }

  const categories = {};
  const departments = {};
  /** A severity's name in the page's language; a city's own severity keeps its code. */
  const severityName = (code) => (gc.t('severity_' + code) === 'severity_' + code ? code : gc.t('severity_' + code));

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
    // the API names each area beside its id; an older server does not, and the areas' names come from dispatch
    if (result.data.rows.some((r) => r.area_id && !r.area_name)) await loadAreaNames(result.data.group_by);
    if (!data || data.group_by !== result.data.group_by) trendChosen = null;
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
    drawHeader();
    const period = $('period-shown').value;
    const rows = data.rows.filter((r) => r.period_start === period);
    drawCharts(rows);
    drawTrend();
    drawRanking(rows);
    drawTable(data.rows);
  }

  /** The report's header: what is counted, over which local dates, in which time zone (printed too). */
  function drawHeader() {
    const by = data.group_by === 'department' ? 'opened' : (data.by || 'opened');
    $('report-range').textContent = gc.t('report_range', {
      group: gc.t('group_' + data.group_by), period: gc.t('period_' + data.period), by: gc.t('by_' + by),
      from: data.from, to: data.to });
    $('time-zone').textContent = data.time_zone ? gc.t('time_zone', { zone: data.time_zone }) : '';
  }

  // -- trends: a measure over the periods, a line per unit ------------------------------------------------

  const trendMeasures = () => (byDepartment() ? DEPARTMENT_TREND_MEASURES : TREND_MEASURES);
  const measureLabel = (key, kind) => (kind === 'time' ? gc.t('col_' + key + '_median') : gc.t('col_' + key));

  /** A row's value of a measure as drawn: a rate in %, a time's median in hours, a count as it is. */
  function trendValue(row, key, kind) {
    if (!row) return null;
    if (kind === 'time') return hours((row[key] || {}).median);
    const v = row[key];
    if (v === null || v === undefined) return null;
    return kind === 'rate' ? Math.round(v * 1000) / 10 : v;
  }

  /** The groups by their volume over the whole range (cases opened, or assignments), the busiest first. */
  function groupsByVolume() {
    const volume = byDepartment() ? 'assigned' : 'opened';
    const totals = new Map();
    data.rows.forEach((r) => {
      const k = keyOf(r);
      const entry = totals.get(k) || { key: k, name: groupOf(r), volume: 0 };
      entry.volume += r[volume] || 0;
      totals.set(k, entry);
    });
    return Array.from(totals.values()).sort((a, b) => b.volume - a.volume || String(a.name).localeCompare(String(b.name)));
  }

  function drawTrendControls() {
    const select = $('trend-measure');
    const chosen = select.value;
    select.replaceChildren(...trendMeasures().map(([key, kind]) => gc.el('option', { value: key, text: measureLabel(key, kind) })));
    if (trendMeasures().some(([key]) => key === chosen)) select.value = chosen;
    const groups = groupsByVolume();
    if (!trendChosen) trendChosen = groups.slice(0, TREND_DEFAULT_UNITS).map((g) => g.key);
    const listed = groups.slice(0, TREND_MAX_LISTED);
    groups.filter((g) => trendChosen.includes(g.key) && !listed.includes(g)).forEach((g) => listed.push(g));
    $('trend-units').replaceChildren(...listed.map((g, i) => gc.el('label', { class: 'check' }, [
      gc.el('input', { type: 'checkbox', value: g.key, id: 'trend-unit-' + i, checked: trendChosen.includes(g.key) }),
      ' ', gc.el('span', { text: g.name }),
    ])));
    if (groups.length > listed.length) $('trend-units').append(gc.el('p', { class: 'muted small', text: gc.t('trend_more', { n: groups.length - listed.length }) }));
  }

  function drawTrend(controls) {
    if (controls !== false) drawTrendControls();
    if (trendChart) trendChart.destroy();
    const key = $('trend-measure').value;
    const kind = (trendMeasures().find(([k]) => k === key) || [])[1];
    const periods = Array.from(new Set(data.rows.map((r) => r.period_start))).sort();
    const byGroup = new Map();
    data.rows.forEach((r) => {
      if (!byGroup.has(keyOf(r))) byGroup.set(keyOf(r), { name: groupOf(r), rows: {} });
      byGroup.get(keyOf(r)).rows[r.period_start] = r;
    });
    const drawn = trendChosen.filter((k) => byGroup.has(k));
    const datasets = drawn.map((k, i) => {
      const colour = COLOURS[i % COLOURS.length];
      return { label: byGroup.get(k).name, borderColor: colour, backgroundColor: colour,
        borderDash: DASHES[Math.floor(i / 2) % DASHES.length], pointRadius: 3, spanGaps: false, tension: 0,
        data: periods.map((p) => trendValue(byGroup.get(k).rows[p], key, kind)) };
    });
    // a count's axis is in whole cases (Chart.js would step 0.5 between 1 and 2): precision 0 rounds its steps
    const y = kind === 'rate' ? { min: 0, max: 100, ticks: { callback: (v) => v + '%' } }
      : kind === 'count' ? { beginAtZero: true, ticks: { precision: 0 } }
        : { beginAtZero: true, title: { display: true, text: gc.t('chart_trend_hours') } };
    trendChart = new Chart($('chart-trend'), {
      type: 'line',
      data: { labels: periods, datasets },
      options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y },
        plugins: { legend: { position: 'bottom', labels: { usePointStyle: true, pointStyle: 'line', pointStyleWidth: 36 } } } },
    });
    sayWhenBlank(trendChart);
    $('chart-trend').setAttribute('aria-label', gc.t('trend') + ': ' + measureLabel(key, kind));
    $('trend-caption').textContent = gc.t('trend_caption', {
      measure: kind === 'time' ? gc.t('in_hours', { label: measureLabel(key, kind) }) : measureLabel(key, kind),
      period: gc.t('period_' + data.period), units: datasets.map((d) => d.label).join(gc.lang === 'zh' ? '、' : ', ') });
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
    charts.forEach(sayWhenBlank);
  }

  /** A chart of nothing but zeros and gaps (before any case closed) draws bare axes: its note says why. */
  function sayWhenBlank(chart) {
    const blank = chart.data.datasets.every((d) => d.data.every((v) => v === null || v === undefined || v === 0));
    $(chart.canvas.id + '-empty').hidden = !blank;
  }

  function drawRanking(rows) {
    let by = $('rank-by').value;
    if (byDepartment() && !['on_time_rate', 'decline_rate', 'overdue'].includes(by)) by = 'on_time_rate';
    const volume = byDepartment() ? 'assigned' : 'opened';
    const worseHigh = ['rework_rate', 'extension_rate', 'escalation_rate', 'overdue', 'decline_rate'].includes(by);
    $('ranking-caption').textContent = gc.t('ranking_caption', { measure: gc.t('col_' + by), period: $('period-shown').value });
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
        gc.el('td', { class: 'group', text: groupOf(r) }), gc.el('td', { class: 'date', text: r.period_start || '' }),
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
        gc.el('td', { class: 'group', text: groupOf(r) }), gc.el('td', { class: 'date', text: r.period_start || '' }),
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

  let limits = null; // GET REPLAY: {severities, units, categories: [{code, zh, en, severity, rules}]}
  let replaySources = []; // per change sent, the form's level it came from (to place the server's problems)
  let replayCaption = null; // () => the caption of the last replay, in the page's language

  const categoryName = (c) => (c ? (gc.lang === 'zh' ? c.zh : c.en) : '');
  const amountText = (n) => String(Math.round(n * 100) / 100);
  const limitText = (l) => gc.t('limit_' + l.unit, { n: amountText(l.amount) });
  const replayMode = () => $('replay-form').elements.mode.value;
  const chosenCategories = () => Array.from(document.querySelectorAll('#replay-category-list input:checked')).map((i) => i.value);

  async function loadLimits() {
    const result = await gc.api('GET', REPLAY).catch(() => null);
    // an older server answers no limits: the policy file only
    if (!result || !result.ok || !result.data || !Array.isArray(result.data.categories)) { drawLimitsForm(); return; }
    limits = result.data;
    drawLimitsForm();
  }

  /** The severity list, the category checkboxes and each level's current limits, in the page's language. */
  function drawLimitsForm() {
    if (!limits) {
      $('replay-form').elements.mode[1].checked = true;
      showMode();
      return;
    }
    const severity = $('replay-severity').value || 'normal';
    $('replay-severity').replaceChildren(...limits.severities.map((code) => gc.el('option', { value: code, text: severityName(code) })));
    if (limits.severities.includes(severity)) $('replay-severity').value = severity;
    const chosen = chosenCategories();
    $('replay-category-list').replaceChildren(...limits.categories.map((c, i) => gc.el('label', { class: 'check' }, [
      gc.el('input', { type: 'checkbox', name: 'category', value: c.code, id: 'replay-category-' + i, checked: chosen.includes(c.code) }),
      ' ', gc.el('span', { text: categoryName(c) }),
    ])));
    drawLevels();
  }

  /** Beside each level, the limits it has now for the chosen categories; its unit the limit's own unit. */
  function drawLevels() {
    if (!limits) return;
    const severity = $('replay-severity').value;
    const rules = limits.categories.filter((c) => chosenCategories().includes(c.code)).map((c) => c.rules[severity]).filter(Boolean);
    [1, 2, 3, 4].forEach((n) => {
      const now = rules.filter((r) => r.limits[n]).map((r) => r.limits[n]);
      const texts = Array.from(new Set(now.map(limitText)));
      const used = !rules.length || now.length > 0;
      $('replay-level-' + n + '-now').textContent = !rules.length ? '' : used ? gc.t('replay_now', { limit: texts.join(' / ') }) : gc.t('replay_not_used');
      $('replay-amount-' + n).disabled = !used;
      $('replay-unit-' + n).disabled = !used;
      const unit = $('replay-unit-' + n);
      if (now.length && !unit.dataset.touched) unit.value = now[0].unit;
    });
  }

  function showMode() {
    const file = replayMode() === 'file';
    $('replay-limits').hidden = file;
    $('replay-file-box').hidden = !file;
  }

  function clearReplayErrors() {
    $('replay-error').textContent = '';
    document.querySelectorAll('#replay-form .field-error').forEach((p) => { p.textContent = ''; delete p.dataset.problemField; });
    document.querySelectorAll('#replay-form [aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  }

  /** The controls a form place (data-field) stands for, marked invalid with its error. */
  const FIELD_CONTROLS = {
    from: () => [$('replay-from')], to: () => [$('replay-to')], policy: () => [$('replay-file')],
    severity: () => [$('replay-severity')], category: () => Array.from(document.querySelectorAll('#replay-category-list input')),
  };

  function fieldError(place, text, problemField) {
    const p = document.querySelector('#replay-form .field-error[data-field="' + place + '"]');
    if (!p) return false;
    p.textContent = p.textContent ? p.textContent + ' ' + text : text;
    if (problemField) p.dataset.problemField = problemField;
    const level = /^level-(\d)$/.exec(place);
    const controls = level ? [$('replay-amount-' + level[1]), $('replay-unit-' + level[1])] : (FIELD_CONTROLS[place] || (() => []))();
    controls.forEach((c) => c.setAttribute('aria-invalid', 'true'));
    return true;
  }

  /** Where a problem's field (from, policy, changes.3.amount, …) is shown in the form. */
  function placeOf(field) {
    if (['from', 'to', 'policy'].includes(field)) return field;
    const m = /^changes\.(\d+)\.(\w+)$/.exec(field || '');
    if (!m || !replaySources[Number(m[1])]) return null;
    if (m[2] === 'category' || m[2] === 'severity') return m[2];
    return 'level-' + replaySources[Number(m[1])].level;
  }

  /** The form as the replay's body: {policy} or {changes} with the range; null (and errors shown) if it
   *  cannot be sent. Every other check is the server's (its problems are placed next to the fields). */
  async function replayBody() {
    const body = { from: $('replay-from').value, to: $('replay-to').value };
    if (replayMode() === 'file') {
      const file = $('replay-file').files[0];
      if (!file) { fieldError('policy', gc.t('replay_no_file')); return null; }
      const name = file.name;
      replayCaption = () => gc.t('replay_caption_file', { from: body.from, to: body.to, file: name });
      return Object.assign(body, { policy: await file.text() });
    }
    const cats = chosenCategories();
    const severity = $('replay-severity').value;
    const changes = [];
    replaySources = [];
    let ok = true;
    const levels = [];
    [1, 2, 3, 4].forEach((n) => {
      const input = $('replay-amount-' + n);
      if (input.disabled) return;
      if (input.validity.badInput) { fieldError('level-' + n, gc.t('replay_not_a_number')); ok = false; return; }
      if (input.value === '') return;
      levels.push({ level: n, amount: Number(input.value), unit: $('replay-unit-' + n).value });
    });
    if (!cats.length) { fieldError('category', gc.t('replay_choose_category')); ok = false; }
    if (!levels.length && ok) { fieldError('level-1', gc.t('replay_enter_limit')); ok = false; }
    if (!ok) return null;
    cats.forEach((code) => {
      const rule = (limits.categories.find((c) => c.code === code) || { rules: {} }).rules[severity];
      levels.forEach((l) => {
        if (rule && l.level < rule.start_level) return; // never used: its cases open above it
        changes.push({ category: code, severity, level: l.level, amount: l.amount, unit: l.unit });
        replaySources.push({ level: l.level });
      });
    });
    replayCaption = () => {
      const names = cats.map((code) => categoryName(limits.categories.find((c) => c.code === code)) || code).join(gc.lang === 'zh' ? '、' : ', ');
      const what = levels.map((l) => gc.t('level_' + l.level) + ' → ' + limitText(l)).join('; ');
      return gc.t('replay_caption_limits', { from: body.from, to: body.to, changes: names + ' (' + severityName(severity) + '): ' + what });
    };
    return Object.assign(body, { changes });
  }

  /** Forgets the last replay's answer (its caption and tables): a new replay is asked for, and what is
   *  shown under the form is only ever the answer to the form as sent, or nothing (never an older answer
   *  under this one's problems). */
  function clearReplay() {
    lastReplay = null;
    replayCaption = null;
    $('replay').classList.remove('has-result');
    $('replay-caption').textContent = '';
    $('replay-result').replaceChildren();
  }

  async function replay(e) {
    e.preventDefault();
    clearReplayErrors();
    clearReplay();
    const out = $('replay-result');
    const body = await replayBody();
    if (!body) return;
    const result = await gc.api('POST', REPLAY, { body });
    if (result.status === 404 || result.status === 405 || result.status === 501) {
      out.replaceChildren(gc.el('p', { class: 'notice warn', text: gc.t('replay_unavailable') }));
      return;
    }
    if (!result.ok) {
      const errors = (result.data && result.data.errors) || [];
      const unplaced = errors.filter((problem) => !fieldError(placeOf(problem.field), problem.detail, problem.field));
      $('replay-error').textContent = unplaced.length || !errors.length ? gc.problemText(result) : gc.t('replay_failed');
      return;
    }
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

  /** One side of a unit's replay in a cell: a measure a line. */
  const measureLines = (side) => measures(side).map(([label, value]) => gc.el('div', { text: label + ' ' + value }));

  /** The replay's answer side by side: the total, then each unit and category, current policy | new policy. */
  function drawReplay() {
    if (!lastReplay) return;
    $('replay').classList.add('has-result');
    $('replay-caption').textContent = replayCaption ? replayCaption() : '';
    const total = lastReplay.total || {};
    const current = total.current || {};
    const next = total.new || {};
    const now = [[gc.t('replay_cases'), total.cases === undefined ? '—' : total.cases], ...measures(current)];
    const then = new Map([[gc.t('replay_cases'), total.cases === undefined ? '—' : total.cases], ...measures(next)]);
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
        gc.el('td', { class: 'group', text: r.unit_name || r.unit || '—' }), gc.el('td', { text: categories[r.category] ? (gc.lang === 'zh' ? categories[r.category].zh : categories[r.category].en) : (r.category || '—') }),
        gc.el('td', { class: 'num', text: r.cases }),
        gc.el('td', { class: 'num' }, measureLines(r.current)),
        gc.el('td', { class: 'num' }, measureLines(r.new)),
      ]))),
    ]);
    $('replay-result').replaceChildren(
      gc.el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': gc.t('replay') }, [totals]),
      gc.el('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': gc.t('replay_unit') }, [detail]));
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
    $('replay-to').value = $('q-to').value;
    $('replay-from').value = $('q-from').value;
    $('query').addEventListener('submit', (e) => { e.preventDefault(); load(); });
    $('rank-by').addEventListener('change', render);
    $('period-shown').addEventListener('change', render);
    $('csv').addEventListener('click', downloadCsv);
    $('print').addEventListener('click', () => window.print());
    $('replay-form').addEventListener('submit', replay);
    $('replay-form').addEventListener('change', (e) => {
      if (e.target.name === 'mode') showMode();
      if (e.target.name === 'category' || e.target.id === 'replay-severity') drawLevels();
      if (e.target.id && e.target.id.startsWith('replay-unit-')) e.target.dataset.touched = 'true';
    });
    $('trend-measure').addEventListener('change', () => drawTrend(false));
    $('trend-units').addEventListener('change', () => {
      trendChosen = Array.from(document.querySelectorAll('#trend-units input:checked')).map((i) => i.value);
      drawTrend(false);
    });
    // the printed report: its charts drawn at the paper's width, and the moment it was printed
    window.addEventListener('beforeprint', () => {
      $('report-printed').textContent = gc.t('report_printed', { at: gc.time(new Date().toISOString()) });
      Object.values(Chart.instances).forEach((c) => c.resize());
    });
    window.addEventListener('afterprint', () => Object.values(Chart.instances).forEach((c) => c.resize()));
    document.addEventListener('gc:language', () => {
      if (data) render();
      else if (document.body.dataset.stats === 'unavailable') status(gc.t('unavailable'), 'warn');
      drawLimitsForm();
      drawReplay();
    });
    Promise.all([loadCategories(), loadDepartments(), loadLimits()]).then(load).then(() => { document.body.dataset.ready = 'true'; });
    gcHotspots.start(); // reports per grid and category over the period, on the grid polygons
  }

  document.addEventListener('DOMContentLoaded', () => {
    gc.init();
    gc.signIn(start);
  });
}());
