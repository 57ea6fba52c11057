/* Hotspots on the desk: the cases opened over the selected period (the query's from and to) per grid and
 * category (GET /escalation/v1/stats/hotspots), coloured on the grid polygons of the caller's area — a heat
 * map with no tile server — with a legend and the busiest grids as a table. One category, or all together.
 */
(function () {
  'use strict';
  const HOTSPOTS = '/escalation/v1/stats/hotspots';
  // ColorBrewer's sequential "Oranges" (5 classes), light to dark; a grid with no report stays grey.
  const CLASSES = ['#fdd0a2', '#fdae6b', '#fd8d3c', '#e6550d', '#a63603'];
  const NONE = '#eceff1';
  const TOP = 15;
  let view = null;
  let areas = null;
  let categories = {};
  let data = null;
  let asked = 0; // the latest request: an older answer arriving after it is dropped

  const $ = (id) => document.getElementById(id);

  function categoryName(code) {
    const c = categories[code];
    return c ? (gc.lang === 'zh' ? c.zh : c.en) : code;
  }

  function gridName(id) {
    const f = areas && areas.grids.find((g) => g.properties.id === id);
    return f ? f.properties.name : id;
  }

  /** The classes of the counts: up to five equal steps from 1 to the largest, each [low, high, colour],
   *  the darkest for the largest (fewer classes than colours take the darker ones). */
  function bounds(max) {
    const n = Math.min(CLASSES.length, max);
    const step = Math.ceil(max / n);
    return Array.from({ length: n }, (_, i) => [i * step + 1, i === n - 1 ? max : (i + 1) * step, CLASSES[CLASSES.length - n + i]]);
  }

  function colour(count, classes) {
    if (!count) return NONE;
    return (classes.find(([, high]) => count <= high) || classes[classes.length - 1])[2];
  }

  function render(fit) {
    if (!data) return;
    const totals = {};
    data.rows.forEach((r) => { totals[r.area_id] = (totals[r.area_id] || 0) + r.reports; });
    const max = Math.max(0, ...Object.values(totals));
    const classes = bounds(max);
    if (view) {
      const hot = L.latLngBounds([]);
      view.layer.eachLayer((layer) => {
        const id = layer.feature.properties.id;
        const count = totals[id] || 0;
        layer.setStyle({ fillColor: colour(count, classes), fillOpacity: count ? 0.85 : 0.5, color: '#37474f', weight: 1 });
        const label = gcAreas.text(layer.feature.properties.name + ' · ' + gc.t('hotspot_reports', { n: count }));
        if (layer.getTooltip()) layer.setTooltipContent(label);
        else layer.bindTooltip(label, { sticky: true });
        if (count) hot.extend(layer.getBounds());
      });
      if (fit && hot.isValid()) view.map.fitBounds(hot.pad(0.6), { animate: false, maxZoom: 16 }); // where the reports are
    }
    $('hotspot-legend').replaceChildren(...(max ? classes.map(([low, high, fill]) => gc.el('span', { class: 'swatch-row' }, [
      gc.el('span', { class: 'swatch swatch-' + CLASSES.indexOf(fill) }), gc.el('span', { text: low === high ? String(low) : low + '–' + high }),
    ])) : [gc.el('span', { class: 'muted', text: gc.t('hotspot_none') })]));
    const rows = data.rows.slice(0, TOP);
    $('hotspot-table').replaceChildren(
      gc.el('thead', {}, [gc.el('tr', {}, [
        gc.el('th', { scope: 'col', text: gc.t('hotspot_grid') }), gc.el('th', { scope: 'col', text: gc.t('hotspot_category') }),
        gc.el('th', { scope: 'col', class: 'num', text: gc.t('hotspot_count') })])]),
      gc.el('tbody', {}, rows.map((r) => gc.el('tr', { 'data-grid': r.area_id }, [
        gc.el('td', { text: gridName(r.area_id) }), gc.el('td', { class: 'category', text: categoryName(r.category) }),
        gc.el('td', { class: 'num', text: r.reports })]))),
    );
    document.body.dataset.hotspots = String(data.rows.length);
  }

  async function load() {
    const f = $('query').elements;
    const params = new URLSearchParams({ from: f.from.value, to: f.to.value });
    if ($('h-category').value) params.set('category', $('h-category').value);
    $('hotspot-status').textContent = gc.t('loading');
    const mine = ++asked;
    const result = await gc.api('GET', HOTSPOTS + '?' + params).catch(() => null);
    if (mine !== asked) return;
    if (!result || !result.ok) {
      $('hotspot-status').textContent = result && (result.status === 404 || result.status === 405)
        ? gc.t('hotspot_unavailable') : gc.t('load_failed', { error: result ? gc.problemText(result) : '' });
      return;
    }
    data = result.data;
    document.body.dataset.hotspotCategory = params.get('category') || 'all'; // what the view shows
    $('hotspot-status').textContent = gc.t('hotspot_period', { from: data.from, to: data.to });
    render(true);
  }

  function fillCategories() {
    const select = $('h-category');
    const value = select.value;
    select.replaceChildren(select.options[0], ...Object.keys(categories).map((code) => gc.el('option', { value: code, text: categoryName(code) })));
    select.value = value;
  }

  /** Called by the desk once signed in. */
  async function start() {
    $('hotspot-form').addEventListener('submit', (e) => { e.preventDefault(); load(); });
    $('h-category').addEventListener('change', load);
    $('query').addEventListener('submit', () => load());
    document.addEventListener('gc:language', () => {
      fillCategories();
      if (data) $('hotspot-status').textContent = gc.t('hotspot_period', { from: data.from, to: data.to });
      render();
    });
    const listed = await gc.api('GET', '/intake/v1/categories').catch(() => null);
    if (listed && listed.ok) listed.data.forEach((c) => { categories[c.code] = c; });
    fillCategories();
    try {
      areas = await gcAreas.mine(gc.claims() || {});
      view = gcAreas.draw($('hotspot-map'), areas);
    } catch (e) {
      $('hotspot-map').textContent = gc.t('load_failed', { error: e.message });
    }
    await load();
  }

  window.gcHotspots = { start, load };
}());
