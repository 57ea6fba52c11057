/* The caller's areas on a Leaflet map, from dispatch's GeoJSON (GET /dispatch/v1/areas?level=...):
 * no tile server, only the city's own polygons. A grid worker sees their grid, a station its grids, a
 * sub-center its stations' grids, headquarters and supervisors the whole city. */
(function () {
  'use strict';

  /** Leaflet writes a string tooltip as HTML: names are data, so they go in as text. */
  function text(value) {
    const span = document.createElement('span');
    span.textContent = value;
    return span;
  }

  async function level(name) {
    const result = await gc.api('GET', '/dispatch/v1/areas?level=' + name);
    if (!result.ok) throw new Error(gc.problemText(result));
    return result.data.features;
  }

  /** {grids: [features], outlines: [features]} for the token's claims. */
  async function mine(claims) {
    const grids = await level('grid');
    if (claims.role === 'grid_worker') return { grids: grids.filter((f) => f.properties.id === claims.area), outlines: [] };
    if (claims.role === 'station') {
      return { grids: grids.filter((f) => f.properties.parent === claims.area), outlines: [] };
    }
    const stations = await level('station');
    if (claims.role === 'subcenter') {
      const ids = new Set(stations.filter((f) => f.properties.parent === claims.area).map((f) => f.properties.id));
      return { grids: grids.filter((f) => ids.has(f.properties.parent)), outlines: stations.filter((f) => ids.has(f.properties.id)) };
    }
    return { grids, outlines: stations };
  }

  /** A map in `element` showing `areas`; returns {map, layer, fit()}. */
  function draw(element, areas, options) {
    const map = L.map(element, Object.assign({ preferCanvas: true, zoomSnap: 0.25, minZoom: 3, maxZoom: 19 }, options || {}));
    map.attributionControl.setPrefix('Leaflet');
    const gridLayer = L.geoJSON({ type: 'FeatureCollection', features: areas.grids }, {
      style: { color: '#37474f', weight: 1, fillColor: '#eceff1', fillOpacity: 0.6 },
      onEachFeature: (f, layer) => layer.bindTooltip(text(f.properties.name), { sticky: true }),
    }).addTo(map);
    L.geoJSON({ type: 'FeatureCollection', features: areas.outlines }, {
      style: { color: '#1a237e', weight: 2, fill: false }, interactive: false,
    }).addTo(map);
    const fit = () => {
      const size = map.getSize();
      if (!size.x || !size.y) return; // not laid out yet: the ResizeObserver below fits it when it is
      const bounds = gridLayer.getBounds();
      if (bounds.isValid()) map.fitBounds(bounds, { padding: [8, 8] });
      else map.setView([0, 0], 2);
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
    return { map, layer: gridLayer, fit };
  }

  window.gcAreas = { mine, draw, level, text };
}());
