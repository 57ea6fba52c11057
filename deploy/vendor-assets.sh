#!/usr/bin/env bash
# Vendor the pages' browser assets from npm at pinned versions (no CDN, nothing fetched at run time).
#
#   deploy/vendor-assets.sh      (or `make vendor`) — needs npm; run it after changing a version below,
#                                 then commit what it copied. CI and `gridcase up` use the committed files.
#
# Each package is fetched with `npm pack` (the registry's tarball, checked against its integrity hash by
# npm), unpacked in a temporary directory, and only its built files and its licence are copied:
#   shared/pages/static/vendor/<package>/   served to the pages (leaflet, leaflet.markercluster, chart.js, idb)
#   tests/browser/vendor/<package>/         used by the browser tests only (axe-core)
# VERSIONS.txt in each folder records the package, its version and the tarball's integrity.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LEAFLET=1.9.4
MARKERCLUSTER=1.5.3
CHARTJS=4.6.1
IDB=8.0.4
AXE=4.14.1

PAGES=shared/pages/static/vendor
TESTS=tests/browser/vendor
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# fetch NAME VERSION → unpacks into $WORK/NAME/package, prints nothing
fetch() {
    local name="$1" version="$2" dir="$WORK/$1"
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent --json "$name@$version" >pack.json)
    tar -xzf "$dir"/*.tgz -C "$dir"
}

# record DEST NAME VERSION
record() {
    local integrity
    integrity="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$WORK/$2/pack.json")"
    printf '%s@%s %s\n' "$2" "$3" "$integrity" >"$1/VERSIONS.txt"
}

fetch leaflet "$LEAFLET"
rm -rf "$PAGES/leaflet" && mkdir -p "$PAGES/leaflet/images"
cp "$WORK/leaflet/package/dist/leaflet.js" "$WORK/leaflet/package/dist/leaflet.css" "$PAGES/leaflet/"
cp "$WORK/leaflet/package/dist/images/"*.png "$PAGES/leaflet/images/"
cp "$WORK/leaflet/package/LICENSE" "$PAGES/leaflet/LICENSE"
record "$PAGES/leaflet" leaflet "$LEAFLET"

fetch leaflet.markercluster "$MARKERCLUSTER"
rm -rf "$PAGES/leaflet.markercluster" && mkdir -p "$PAGES/leaflet.markercluster"
cp "$WORK/leaflet.markercluster/package/dist/leaflet.markercluster.js" \
   "$WORK/leaflet.markercluster/package/dist/MarkerCluster.css" \
   "$WORK/leaflet.markercluster/package/dist/MarkerCluster.Default.css" "$PAGES/leaflet.markercluster/"
cp "$WORK/leaflet.markercluster/package/MIT-LICENCE.txt" "$PAGES/leaflet.markercluster/LICENSE"
record "$PAGES/leaflet.markercluster" leaflet.markercluster "$MARKERCLUSTER"

fetch chart.js "$CHARTJS"
rm -rf "$PAGES/chart.js" && mkdir -p "$PAGES/chart.js"
cp "$WORK/chart.js/package/dist/chart.umd.min.js" "$PAGES/chart.js/"
cp "$WORK/chart.js/package/LICENSE.md" "$PAGES/chart.js/LICENSE.md"
record "$PAGES/chart.js" chart.js "$CHARTJS"

fetch idb "$IDB"
rm -rf "$PAGES/idb" && mkdir -p "$PAGES/idb"
cp "$WORK/idb/package/build/umd.js" "$PAGES/idb/idb.umd.js"
cp "$WORK/idb/package/LICENSE" "$PAGES/idb/LICENSE"
record "$PAGES/idb" idb "$IDB"

fetch axe-core "$AXE"
rm -rf "$TESTS/axe-core" && mkdir -p "$TESTS/axe-core"
cp "$WORK/axe-core/package/axe.min.js" "$WORK/axe-core/package/LICENSE" "$TESTS/axe-core/"
[[ -f "$WORK/axe-core/package/LICENSE-3RD-PARTY.txt" ]] && cp "$WORK/axe-core/package/LICENSE-3RD-PARTY.txt" "$TESTS/axe-core/"
record "$TESTS/axe-core" axe-core "$AXE"

echo "vendored leaflet@$LEAFLET leaflet.markercluster@$MARKERCLUSTER chart.js@$CHARTJS idb@$IDB (pages) and axe-core@$AXE (tests)"
