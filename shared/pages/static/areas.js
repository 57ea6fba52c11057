/* The caller's areas on a Leaflet map, from dispatch's GeoJSON (GET /dispatch/v1/areas?level=...), over
 * the city's base map when it has one. A grid worker sees their grid, a station its grids, a sub-center
 * its stations' grids, headquarters and supervisors the whole city.
 *
 * Base map: GET <page>/map.json (shared/basemap.py) names the tiles — an XYZ template ({z}/{x}/{y}, {s}
 * a subdomain, {m} a WMTS matrix), their coordinate system (wgs84 | gcj02) and attribution. For GCJ-02
 * tiles the map's projection moves every WGS84 position into GCJ-02 (GCJ-02 below, the same published
 * conversion as shared/gcj02.py), so pins, polygons and a dragged pin's new place stay WGS84 in the page
 * while they land on the right street. Without tiles the polygons are drawn on a plain ground, and the
 * map says "no base map". Tiles are requested with only the page's origin as referrer (strict-origin:
 * a provider keys its quota by it; the sign-in fragment never leaves the page) and never kept by the
 * phone page's service worker (they are another origin's, or outside its kept paths): offline, the map
 * shows the grids without streets.
 *
 * Over the tiles: grids thin and lightly filled, station outlines heavier, sub-center outlines heaviest;
 * names of the finest level whose areas are wide enough on screen to hold them (sub-centers when the
 * whole city shows, then stations, then grids), each only where its name fits inside its area and
 * clear of the names already placed.
 */
(function () {
  'use strict';

  // -- GCJ-02 (AutoNavi/Gaode, Tencent tiles) -------------------------------------------------------------
  // Line for line shared/gcj02.py (Krasovsky ellipsoid constants; no closed-form inverse: fixed-point
  // iteration); positions outside the rough bounding box of China pass unchanged. tests/browser/test_map.py
  // compares both directions with the Python on sample points.
  const A = 6378245.0;
  const EE = 0.00669342162296594323;
  const TOLERANCE_DEG = 1e-10;
  const MAX_STEPS = 30;
  const PI = Math.PI;

  function outOfChina(lon, lat) {
    return !(lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271);
  }

  /** The GCJ-02 shift in degrees [dlon, dlat] at a WGS84 position. */
  function offset(lon, lat) {
    const x = lon - 105.0;
    const y = lat - 35.0;
    const common = (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    let dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) + common;
    dlat += (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0;
    dlat += (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    let dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) + common;
    dlon += (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0;
    dlon += (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    const rad = lat / 180.0 * PI;
    const w = 1.0 - EE * Math.sin(rad) ** 2;
    dlat = dlat * 180.0 / ((A * (1.0 - EE)) / (w * Math.sqrt(w)) * PI);
    dlon = dlon * 180.0 / (A / Math.sqrt(w) * Math.cos(rad) * PI);
    return [dlon, dlat];
  }

  /** WGS84 → GCJ-02: [lon, lat] in degrees. */
  function toGcj02(lon, lat) {
    if (outOfChina(lon, lat)) return [lon, lat];
    const [dlon, dlat] = offset(lon, lat);
    return [lon + dlon, lat + dlat];
  }

  /** GCJ-02 → WGS84: [lon, lat] in degrees. */
  function toWgs84(lon, lat) {
    if (outOfChina(lon, lat)) return [lon, lat];
    let wlon = lon;
    let wlat = lat;
    for (let i = 0; i < MAX_STEPS; i += 1) {
      const [glon, glat] = toGcj02(wlon, wlat);
      const elon = lon - glon;
      const elat = lat - glat;
      wlon += elon;
      wlat += elat;
      if (Math.abs(elon) < TOLERANCE_DEG && Math.abs(elat) < TOLERANCE_DEG) break;
    }
    return [wlon, wlat];
  }

  /** Leaflet's Web Mercator with WGS84 positions moved into GCJ-02 before they are projected. */
  function gcj02Crs() {
    const mercator = L.Projection.SphericalMercator;
    const projection = {
      R: mercator.R,
      MAX_LATITUDE: mercator.MAX_LATITUDE,
      bounds: mercator.bounds,
      project(latlng) {
        const [lon, lat] = toGcj02(latlng.lng, latlng.lat);
        return mercator.project(L.latLng(lat, lon));
      },
      unproject(point) {
        const shifted = mercator.unproject(point);
        const [lon, lat] = toWgs84(shifted.lng, shifted.lat);
        return L.latLng(lat, lon);
      },
    };
    return L.extend({}, L.CRS.EPSG3857, { code: 'EPSG:3857/GCJ-02', projection });
  }

  // -- the base map's settings ------------------------------------------------------------------------------

  const NO_TILES = { tiles: null, crs: 'wgs84', attribution: '', subdomains: 'abc', min_zoom: 0, max_zoom: 18, matrices: null };
  const WORDS = { zh: { none: '无底图', label: '底图' }, en: { none: 'no base map', label: 'base map' } };
  let baseMap = null;

  /** The page's base map (map.json beside the page); no tiles when it cannot be read (offline). */
  async function settings() {
    if (baseMap) return baseMap;
    try {
      const response = await fetch('map.json', { headers: { Accept: 'application/json' } });
      baseMap = response.ok ? Object.assign({}, NO_TILES, await response.json()) : NO_TILES;
    } catch (e) {
      baseMap = NO_TILES;
    }
    return baseMap;
  }

  function words() {
    return WORDS[window.gc && gc.lang === 'en' ? 'en' : 'zh'];
  }

  /** Leaflet writes a string tooltip or attribution as HTML: names are data, so they go in as text. */
  function text(value) {
    const span = document.createElement('span');
    span.textContent = value;
    return span;
  }

  function escaped(value) {
    return text(value).innerHTML;
  }

  async function level(name) {
    const result = await gc.api('GET', '/dispatch/v1/areas?level=' + name);
    if (!result.ok) throw new Error(gc.problemText(result));
    return result.data.features;
  }

  /** {grids, outlines (stations), subcenters: [features]} for the token's claims; the base map's
   *  settings are read at the same time. */
  async function mine(claims) {
    const [grids] = await Promise.all([level('grid'), settings()]);
    if (claims.role === 'grid_worker') {
      return { grids: grids.filter((f) => f.properties.id === claims.area), outlines: [], subcenters: [] };
    }
    if (claims.role === 'station') {
      return { grids: grids.filter((f) => f.properties.parent === claims.area), outlines: [], subcenters: [] };
    }
    const [stations, subcenters] = await Promise.all([level('station'), level('subcenter').catch(() => [])]);
    if (claims.role === 'subcenter') {
      const ids = new Set(stations.filter((f) => f.properties.parent === claims.area).map((f) => f.properties.id));
      return { grids: grids.filter((f) => ids.has(f.properties.parent)), outlines: stations.filter((f) => ids.has(f.properties.id)),
        subcenters: subcenters.filter((f) => f.properties.id === claims.area) };
    }
    return { grids, outlines: stations, subcenters };
  }

  // -- the map ----------------------------------------------------------------------------------------------

  /** The tile layer of `base`, or null without tiles. */
  function tileLayer(base) {
    if (!base.tiles) return null;
    const options = {
      subdomains: base.subdomains, minNativeZoom: base.min_zoom, maxNativeZoom: base.max_zoom, maxZoom: 19,
      attribution: escaped(base.attribution || ''), referrerPolicy: 'strict-origin', className: 'gc-tiles',
    };
    if (base.matrices) options.m = (data) => base.matrices[data.z - base.min_zoom];
    return L.tileLayer(base.tiles, options);
  }

  /** A label control saying the map has no base map (relabelled on a language switch). */
  function noBaseMap(map) {
    const control = L.control({ position: 'bottomleft' });
    control.onAdd = () => {
      const div = L.DomUtil.create('div', 'gc-no-basemap');
      div.dataset.basemap = 'none';
      div.textContent = words().none;
      document.addEventListener('gc:language', () => { div.textContent = words().none; });
      return div;
    };
    return control.addTo(map);
  }

  /** Names of the finest level whose areas are wide enough on screen, each where it fits inside its area. */
  function labeller(map, levels) {
    const group = L.layerGroup().addTo(map);
    // an area narrower than this on screen is too small to name: about five characters of the page's text
    const MIN_WIDTH = 5.5 * (parseFloat(getComputedStyle(document.documentElement).fontSize) || 16);
    const widthOf = (layer) => {
      const b = layer.getBounds();
      return Math.abs(map.latLngToLayerPoint(b.getNorthEast()).x - map.latLngToLayerPoint(b.getSouthWest()).x);
    };
    const median = (values) => { const s = values.slice().sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : 0; };
    function update() {
      group.clearLayers();
      const chosen = levels.filter((l) => l.layers.length).reverse() // finest first
        .find((l) => median(l.layers.slice(0, 200).map(widthOf)) >= MIN_WIDTH);
      if (!chosen) return;
      const view = map.getBounds().pad(0.1);
      const placed = [];
      const overlaps = (r) => placed.some((p) => r.left < p.right && p.left < r.right && r.top < p.bottom && p.top < r.bottom);
      const measure = measurer(chosen.name);
      chosen.layers.forEach((layer) => {
        const name = layer.feature.properties.name || layer.feature.properties.id;
        const width = widthOf(layer);
        if (placed.length >= 300 || width < MIN_WIDTH || !view.intersects(layer.getBounds())) return;
        const centre = layer.getBounds().getCenter();
        const at = map.latLngToContainerPoint(centre);
        const size = measure(name);
        const box = { left: at.x - size.width / 2, right: at.x + size.width / 2, top: at.y - size.height / 2, bottom: at.y + size.height / 2 };
        if (size.width > width || overlaps(box)) return; // only a name that fits, and never over another
        placed.push(box);
        L.tooltip({ permanent: true, direction: 'center', className: 'gc-area-label gc-area-label-' + chosen.name, interactive: false })
          .setLatLng(centre).setContent(text(name)).addTo(group);
      });
    }

    /** The on-screen size of a label of `levelName` with a given text (its CSS font, measured on a canvas). */
    function measurer(levelName) {
      const probe = L.DomUtil.create('div', 'leaflet-tooltip gc-area-label gc-area-label-' + levelName, map.getContainer());
      probe.style.visibility = 'hidden';
      probe.textContent = 'M';
      const style = getComputedStyle(probe);
      const context = document.createElement('canvas').getContext('2d');
      context.font = style.fontWeight + ' ' + style.fontSize + ' ' + style.fontFamily;
      const padding = parseFloat(style.paddingLeft || 0) + parseFloat(style.paddingRight || 0) + 4;
      const height = probe.getBoundingClientRect().height;
      probe.remove();
      return (value) => ({ width: context.measureText(value).width + padding, height });
    }
    map.on('zoomend moveend', update);
    return update;
  }

  /** A map in `element` showing `areas` over the base map read by mine(); returns {map, layer, fit, base}. */
  function draw(element, areas, options) {
    const base = baseMap || NO_TILES;
    const crs = base.tiles && base.crs === 'gcj02' ? gcj02Crs() : L.CRS.EPSG3857;
    const map = L.map(element, Object.assign({ preferCanvas: true, zoomSnap: 0.25, minZoom: 3, maxZoom: 19, crs }, options || {}));
    map.attributionControl.setPrefix('Leaflet');
    const tiles = tileLayer(base);
    element.dataset.basemap = tiles ? base.crs : 'none';
    if (tiles) tiles.addTo(map);
    else noBaseMap(map);
    const gridLayer = L.geoJSON({ type: 'FeatureCollection', features: areas.grids }, {
      style: tiles ? { color: '#263238', weight: 1, fillColor: '#eceff1', fillOpacity: 0.12 }
        : { color: '#37474f', weight: 1, fillColor: '#eceff1', fillOpacity: 0.6 },
      onEachFeature: (f, layer) => layer.bindTooltip(text(f.properties.name), { sticky: true }),
    }).addTo(map);
    const stationLayer = L.geoJSON({ type: 'FeatureCollection', features: areas.outlines }, {
      style: { color: '#1a237e', weight: 2.5, fill: false }, interactive: false,
    }).addTo(map);
    const subcenterLayer = L.geoJSON({ type: 'FeatureCollection', features: areas.subcenters || [] }, {
      style: { color: '#4a148c', weight: 4.5, fill: false }, interactive: false,
    }).addTo(map);
    const labels = labeller(map, [
      { name: 'subcenter', layers: subcenterLayer.getLayers() },
      { name: 'station', layers: stationLayer.getLayers() },
      { name: 'grid', layers: gridLayer.getLayers() },
    ]);
    const fit = () => {
      const size = map.getSize();
      if (!size.x || !size.y) return; // not laid out yet: the ResizeObserver below fits it when it is
      const bounds = gridLayer.getBounds();
      if (bounds.isValid()) map.fitBounds(bounds, { padding: [8, 8] });
      else map.setView([0, 0], 2);
      labels();
    };
    fit();
    // The map may be drawn before its box has its final size (a grid or flex layout settling): fit again
    // whenever the box changes size, until the user moves the map.
    let moved = false;
    ['pointerdown', 'wheel', 'keydown'].forEach((name) => element.addEventListener(name, () => { moved = true; }, { passive: true }));
    new ResizeObserver(() => {
      map.invalidateSize();
      if (!moved) fit();
    }).observe(element);
    return { map, layer: gridLayer, fit, base, tiles };
  }

  /** The icon of a cluster of case pins (leaflet.markercluster's `iconCreateFunction`), the same on every
   *  map: the number of its cases on a disc coloured by its most urgent one (`.cluster-<state>`,
   *  gridcase.css). `rank`: the states, most urgent first; each pin names its own in `options.state` (a
   *  state not in `rank` colours nothing). `scale`: the disc's size over the board's (30–48 px by the
   *  count: 2 on a wall screen of 2160 px). */
  function clusterIcon(rank, scale) {
    return (group) => {
      const children = group.getAllChildMarkers();
      let worst = rank.length - 1;
      children.forEach((m) => {
        const at = rank.indexOf(m.options.state);
        if (at >= 0) worst = Math.min(worst, at);
      });
      const n = children.length;
      const size = Math.round((n < 10 ? 30 : n < 100 ? 36 : n < 1000 ? 42 : 48) * (scale || 1));
      return L.divIcon({ html: '<span>' + n + '</span>', className: 'cluster cluster-' + rank[worst], iconSize: [size, size] });
    };
  }

  window.gcAreas = { mine, draw, level, text, settings, clusterIcon, gcj02: { toGcj02, toWgs84, outOfChina } };
}());
