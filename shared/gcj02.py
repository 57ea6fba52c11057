"""GCJ-02, the offset coordinates of Chinese map apps (Amap/Gaode, Tencent, Google Maps in China).

Phones in China often report positions as GCJ-02, which is WGS84 shifted by a deliberately obscure but publicly
documented polynomial (a few hundred metres). Grids are stored in WGS84, so a GCJ-02 report must be shifted back
before it is located, or it lands in a neighbouring grid.

The forward transform is the well-known public one (Krasovsky ellipsoid constants). It has no closed-form
inverse; `gcj02_to_wgs84` inverts it by fixed-point iteration, which converges to well under a millimetre in a
few steps because the offset changes slowly with position. Outside the rough bounding box of China the
transform is not applied, so coordinates pass through unchanged (as every implementation of it does).
"""
from __future__ import annotations

import math

_A = 6378245.0
_EE = 0.00669342162296594323
_TOLERANCE_DEG = 1e-10  # about 0.01 mm
_MAX_STEPS = 30


def out_of_china(lon: float, lat: float) -> bool:
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    if out_of_china(lon, lat):
        return lon, lat
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    if out_of_china(lon, lat):
        return lon, lat
    wlon, wlat = lon, lat
    for _ in range(_MAX_STEPS):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = lon - glon, lat - glat
        wlon, wlat = wlon + elon, wlat + elat
        if abs(elon) < _TOLERANCE_DEG and abs(elat) < _TOLERANCE_DEG:
            break
    return wlon, wlat


def _offset(lon: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 shift in degrees (dlon, dlat) at a WGS84 position."""
    x, y = lon - 105.0, lat - 35.0
    pi = math.pi
    common = (20.0 * math.sin(6.0 * x * pi) + 20.0 * math.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
    dlat += (20.0 * math.sin(y * pi) + 40.0 * math.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * pi) + 320.0 * math.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
    dlon += (20.0 * math.sin(x * pi) + 40.0 * math.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * pi) + 300.0 * math.sin(x / 30.0 * pi)) * 2.0 / 3.0
    rad = lat / 180.0 * pi
    w = 1.0 - _EE * math.sin(rad) ** 2
    dlat = dlat * 180.0 / ((_A * (1.0 - _EE)) / (w * math.sqrt(w)) * pi)
    dlon = dlon * 180.0 / (_A / math.sqrt(w) * math.cos(rad) * pi)
    return dlon, dlat
