"""AIS matching: which detected vessels were transmitting, and which were "dark".

A user supplies AIS positions (CSV or Parquet: mmsi, timestamp, lat, lon; optional sog, cog, length, heading,
width, the antenna's distances to bow/stern/port/starboard (A/B/C/D), ship type and navigational status).
Each AIS track is brought to the image time (linear interpolation between bracketing fixes, else dead
reckoning from the nearest fix with SOG/COG, within limits); a table with no timestamps is a snapshot at a
given time. Detections and AIS vessels are then paired one-to-one (Hungarian assignment). By default a pair
is judged in the ship's frame: the hull AIS describes (placed from the antenna along the heading) must
touch the detected box, within along- and across-ship gates measured on real AIS (docs/ais.md); the along
gate grows with speed for the image's timing. Detections left without a partner are marked ``dark``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Geod
from scipy.optimize import linear_sum_assignment

from detect.core.geometry import Detection
from imagery.errors import InputError

log = logging.getLogger(__name__)

REQUIRED = ("mmsi", "timestamp", "lat", "lon")
#: Optional numeric columns: motion, size and the antenna's place on the hull (AIS A/B/C/D, metres).
NUMERIC = (
    "sog_kn",
    "cog_deg",
    "length_m",
    "heading_deg",
    "width_m",
    "to_bow_m",
    "to_stern_m",
    "to_port_m",
    "to_starboard_m",
)
TEXT = ("ship_type", "nav_status")
OPTIONAL = NUMERIC + TEXT
#: Accepted spellings (lower case) of each column; MarineCadastre's BaseDateTime/LAT/LON/SOG/COG/Length and
#: the Danish Maritime Authority's "# Timestamp"/Latitude/Heading/Width/A/B/C/D/Ship type fit.
ALIASES: dict[str, tuple[str, ...]] = {
    "mmsi": ("mmsi", "ship_id", "vessel_id"),
    "timestamp": (
        "timestamp",
        "basedatetime",
        "base_date_time",
        "datetime",
        "time",
        "ts",
        "timestamp_utc",
        "# timestamp",
    ),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "sog_kn": ("sog_kn", "sog", "speed", "speed_kn"),
    "cog_deg": ("cog_deg", "cog", "course"),
    "length_m": ("length_m", "length", "loa", "ship_length"),
    "heading_deg": ("heading_deg", "heading", "true_heading", "trueheading", "hdg"),
    "width_m": ("width_m", "width", "beam", "ship_width"),
    "to_bow_m": ("to_bow_m", "to_bow", "dim_a", "dimension_a", "a"),
    "to_stern_m": ("to_stern_m", "to_stern", "dim_b", "dimension_b", "b"),
    "to_port_m": ("to_port_m", "to_port", "dim_c", "dimension_c", "c"),
    "to_starboard_m": ("to_starboard_m", "to_starboard", "dim_d", "dimension_d", "d"),
    "ship_type": ("ship_type", "ship type", "shiptype", "vessel_type", "vesseltype", "vessel type"),
    "nav_status": ("nav_status", "navigational status", "navigational_status", "navstatus", "status"),
}
#: A column naming the kind of transmitter; rows of one that is not a ship (base station, AtoN, aircraft)
#: are dropped.
MOBILE_TYPE = ("type of mobile", "type_of_mobile", "mobile_type")
SHIP_MOBILES = ("class a", "class b")
#: The Danish Maritime Authority writes day first ("12/08/2022 10:30:31"); read month first it is December.
DAY_FIRST_COLUMNS = {"# timestamp": "%d/%m/%Y %H:%M:%S"}
#: Navigational statuses (text or ITU code) of a vessel that is not moving: moored, at anchor, aground.
STATIONARY_STATUS = ("moored", "at anchor", "aground", "1", "5", "6")
#: Ship types whose bridge (and so the GPS antenna) is far aft: cargo and tankers (ITU codes 70-89).
AFT_BRIDGE_TYPES = ("cargo", "tanker")
_KNOT_MPS = 1852.0 / 3600.0
_GEOD = Geod(ellps="WGS84")
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0


class AisError(InputError):
    """AIS input is missing, unreadable or lacks a required column."""


@dataclass(frozen=True)
class AisParams:
    """Gates and limits for bringing AIS to the image time and pairing it with detections.

    The ship-frame defaults were measured on real Sentinel-2 chips with every AIS contact at image time
    (``benchmarks/ais_match_eotdl.py``, docs/ais.md); ``AisParams.legacy()`` is the isotropic matcher
    used before.
    """

    #: Only fixes within this many seconds of the image time are used.
    time_window_s: float = 1800.0
    #: A detection centre and an AIS position farther apart than this are never paired.
    max_distance_m: float = 1000.0
    #: Bracketing fixes farther apart in time than this are not interpolated between.
    max_interp_gap_s: float = 1800.0
    #: Dead reckoning from one fix (SOG/COG, or the velocity of the last two fixes) up to this long.
    max_extrapolation_s: float = 900.0
    #: A fix with no motion information stands for the position up to this long (moored, anchored).
    max_unmoved_s: float = 600.0
    #: Legacy matcher only: lengths disagreeing by more than this fraction of the AIS length are not paired.
    length_tolerance: float = 0.6
    #: Weight of the length term in the cost (legacy: relative difference; ship frame: the share of the
    #: AIS hull the detected box is too short to cover).
    length_weight: float = 0.5
    #: Judge pairs in the ship's frame (hull from the antenna along the heading against the detected box);
    #: False is the legacy matcher: distance between centres and a relative length tolerance.
    ship_frame: bool = True
    #: Largest gap along the ship's axis between the AIS hull and the detected box, before timing.
    along_gate_m: float = 30.0
    #: Largest gap across the ship's axis between the AIS hull and the detected box.
    across_gate_m: float = 20.0
    #: Cargo ships and tankers: the antenna lies this fraction of the length aft of the hull centre when
    #: AIS gives no A/B, give or take ``aft_antenna_spread`` of the length.
    aft_antenna_fraction: float = 0.35
    aft_antenna_spread: float = 0.1
    #: Other ships without A/B: the antenna lies within this fraction of the length of the hull centre.
    antenna_spread: float = 0.4
    #: Seconds the image time is uncertain for any one ship (a Sentinel-2 tile takes ~16 s to scan, and
    #: one timestamp serves it all); times the speed, it widens the along gate.
    scene_time_uncertainty_s: float = 10.0
    #: Dead reckoning over a distance is off by up to this fraction of it, along and across.
    reckon_error_fraction: float = 0.1
    #: Sentinel-1 displaces a moving ship along the satellite track by slant range / platform speed (105-135 s
    #: for IW) × its speed towards the radar (up to ~0.7 × its speed at IW incidences): both gates of a
    #: radar detection grow by this many seconds × the speed. Physics, not yet measured on real S1 AIS.
    sar_azimuth_shift_s: float = 95.0
    #: Speed assumed for the along gate when AIS gives none and the vessel is not moored or anchored.
    default_speed_kn: float = 12.0
    #: Weight of the distance between the box centre and the hull centre (tie-breaker) in the cost.
    centre_weight: float = 0.5

    @classmethod
    def legacy(cls, **changes: float) -> AisParams:
        """The matcher before issue 16: 500 m between centres, lengths within 60 %, no ship frame."""
        return replace(cls(ship_frame=False, max_distance_m=500.0), **changes)


def _pick(columns: Sequence[str], name: str) -> str | None:
    lower = {str(c).lower().strip(): c for c in columns}
    for alias in ALIASES[name]:
        if alias in lower:
            return lower[alias]
    return None


def _parse_times(values: pd.Series, column: str, source: str) -> pd.Series:
    fmt = DAY_FIRST_COLUMNS.get(column.lower().strip())
    # a feed may mix precisions ("…:30Z" beside "…:31.5Z"): without a known format, ISO 8601 per value. Not
    # "mixed": it guesses each value's order on its own, so a day-first feed gave 01/02 as 2 January beside
    # 13/02 as 13 February, silently
    for f in (fmt,) if fmt else (None, "ISO8601"):
        try:
            return pd.to_datetime(values, utc=True, format=f)
        except (ValueError, TypeError) as e:
            why = str(e).splitlines()[0]
    raise AisError(f"{source}: timestamps cannot be parsed ({why})")


def normalise_ais(
    df: pd.DataFrame, source: str = "AIS table", *, when: datetime | None = None
) -> pd.DataFrame:
    """Columns renamed to mmsi, timestamp (UTC), lat, lon and the optional ones; bad rows dropped.

    A table without timestamps is a snapshot: give ``when`` (timezone-aware) and every row is a position at
    that time. Naive timestamps are taken as UTC (AIS feeds log UTC). Rows from transmitters that are not
    ships (a "type of mobile" column saying base station, AtoN, aircraft) are dropped. Rows are sorted by
    mmsi and time, and repeated (mmsi, timestamp) fixes are kept once.
    """
    found = {name: _pick(list(df.columns), name) for name in ALIASES}
    snapshot = found["timestamp"] is None and when is not None
    missing = [n for n in REQUIRED if found[n] is None and not (snapshot and n == "timestamp")]
    if missing:
        raise AisError(
            f"{source} lacks column(s) {', '.join(missing)}; has {', '.join(map(str, df.columns))} "
            f"(needs mmsi, timestamp, lat, lon; optional sog, cog, length, heading, width, A/B/C/D; "
            f"a snapshot without timestamps needs the image time)"
        )
    mobile = next((c for c in df.columns if str(c).lower().strip() in MOBILE_TYPE), None)
    if mobile is not None:
        kind = df[mobile].astype("string").str.lower().str.strip()
        df = df[kind.isna() | kind.isin(SHIP_MOBILES)]
    out = pd.DataFrame({n: df[c] for n, c in found.items() if c is not None}, index=df.index)
    for n in OPTIONAL:
        if n not in out:
            out[n] = np.nan
    if snapshot:
        out["timestamp"] = _utc(when)
    else:
        out["timestamp"] = _parse_times(out["timestamp"], str(found["timestamp"]), source)
    out["mmsi"] = pd.to_numeric(out["mmsi"], errors="coerce").astype("Int64")
    for n in ("lat", "lon", *NUMERIC):
        out[n] = pd.to_numeric(out[n], errors="coerce").astype(float)
    for n in TEXT:
        out[n] = out[n].astype("string").str.strip().replace("", pd.NA).astype(object)
        out[n] = out[n].where(out[n].notna(), None)
    # AIS "not available" codes: SOG 102.3 kn, COG 360, heading 511, lat 91, lon 181, dimensions 0.
    out.loc[out["sog_kn"] >= 102.3, "sog_kn"] = np.nan
    for n in ("cog_deg", "heading_deg"):
        out.loc[(out[n] < 0) | (out[n] >= 360), n] = np.nan
    for n in ("length_m", "width_m", "to_bow_m", "to_stern_m", "to_port_m", "to_starboard_m"):
        out.loc[out[n] <= 0, n] = np.nan
    ab = out["to_bow_m"] + out["to_stern_m"]
    out["length_m"] = out["length_m"].fillna(ab)
    cd = out["to_port_m"] + out["to_starboard_m"]
    out["width_m"] = out["width_m"].fillna(cd)
    ok = (
        out["mmsi"].notna()
        & out["timestamp"].notna()
        & out["lat"].between(-90, 90)
        & out["lon"].between(-180, 180)
    )
    if not ok.all():  # said, not silent: a feed with swapped or scaled columns loses most rows here
        log.warning(
            "%s: %d of %d AIS row(s) left out: no MMSI or time, or a position out of range (lat 91 / "
            "lon 181: not available)",
            source,
            int((~ok).sum()),
            len(ok),
        )
    out = out[ok].astype({"mmsi": "int64"})
    out = out.sort_values(["mmsi", "timestamp"], kind="stable").drop_duplicates(["mmsi", "timestamp"])
    return out[list(REQUIRED + OPTIONAL)].reset_index(drop=True)


def load_ais(path: str | Path, *, when: datetime | None = None) -> pd.DataFrame:
    """Read AIS positions from a CSV (``.csv``, ``.csv.gz``) or Parquet file and normalise them.

    ``when``: the time of a snapshot file that has no timestamp column (``normalise_ais``)."""
    path = Path(path)
    if not path.is_file():
        raise AisError(f"no such AIS file: {path}")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz", ".txt")):
            df = pd.read_csv(path)
        else:
            raise AisError(f"{path}: AIS must be .csv or .parquet")
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise AisError(f"cannot read AIS {path}: {str(e).splitlines()[0]}") from None
    return normalise_ais(df, str(path), when=when)


def _utc(when: datetime) -> pd.Timestamp:
    if when.tzinfo is None:
        raise ValueError("image time must be timezone-aware (UTC)")
    return pd.Timestamp(when.astimezone(timezone.utc))


POSITION_COLUMNS = (
    "mmsi",
    "lat",
    "lon",
    "length_m",
    "method",
    "dt_s",
    *[n for n in OPTIONAL if n != "length_m"],
)


def _first(values: np.ndarray) -> object:
    for v in values:
        if v is not None and not (isinstance(v, float) and np.isnan(v)):
            return v
    return None


def _track_motion(lat: np.ndarray, lon: np.ndarray, secs: np.ndarray, a: int, b: int) -> tuple[float, float]:
    """Speed (kn) and course (deg) from fix ``a`` to fix ``b``."""
    az, _, dist = _GEOD.inv(lon[a], lat[a], lon[b], lat[b])
    span = abs(secs[b] - secs[a])
    if span == 0:
        return np.nan, np.nan
    course = az % 360.0 if dist > 0 else np.nan
    return dist / span / _KNOT_MPS, course


def ais_positions_at(ais: pd.DataFrame, when: datetime, params: AisParams | None = None) -> pd.DataFrame:
    """Each vessel's position at ``when``: mmsi, lat, lon, length_m, method, dt_s (to the fix used), and its
    speed, course, heading, size, antenna offsets, ship type and status (the nearest fix's, or the track's
    speed and course when the fixes carry none).

    ``method`` is ``interpolated`` (between bracketing fixes), ``dead_reckoned`` (SOG/COG from the
    nearest fix), ``track_extrapolated`` (velocity of its two nearest fixes on one side) or ``unmoved``
    (a nearby fix with no motion information). Vessels with no usable fix are left out.
    """
    p = params or AisParams()
    t = _utc(when)
    for n in OPTIONAL:  # tables built before the optional columns existed
        if n not in ais:
            ais = ais.assign(**{n: np.nan if n in NUMERIC else None})
    win = ais[(ais["timestamp"] - t).abs() <= pd.Timedelta(seconds=p.time_window_s)]
    rows = []
    for mmsi, g in win.groupby("mmsi", sort=True):
        secs = (g["timestamp"] - t).dt.total_seconds().to_numpy()
        lat, lon = g["lat"].to_numpy(), g["lon"].to_numpy()
        sog, cog = g["sog_kn"].to_numpy(float), g["cog_deg"].to_numpy(float)
        length = float(np.nanmax(g["length_m"].to_numpy())) if g["length_m"].notna().any() else np.nan
        before, after = np.nonzero(secs <= 0)[0], np.nonzero(secs >= 0)[0]
        k = int(np.argmin(np.abs(secs)))
        motion = (sog[k], cog[k])
        pos = None
        if before.size and after.size:
            i, j = before[-1], after[0]
            if i == j:
                pos = (lat[i], lon[i], "interpolated", 0.0)
            elif secs[j] - secs[i] <= p.max_interp_gap_s:
                w = -secs[i] / (secs[j] - secs[i])
                pos = (
                    lat[i] + w * (lat[j] - lat[i]),
                    lon[i] + w * (lon[j] - lon[i]),
                    "interpolated",
                    float(min(-secs[i], secs[j])),
                )
                track = _track_motion(lat, lon, secs, i, j)
                motion = tuple(m if np.isfinite(m) else tm for m, tm in zip(motion, track, strict=True))
        if pos is None:
            dt = -secs[k]  # seconds from the fix forward to the image time (negative: back in time)
            side = before if secs[k] <= 0 else after
            if abs(dt) <= p.max_extrapolation_s and np.isfinite(sog[k]) and np.isfinite(cog[k]):
                lo, la, _ = _GEOD.fwd(lon[k], lat[k], cog[k], sog[k] * _KNOT_MPS * dt)
                pos = (la, lo, "dead_reckoned", abs(dt))
            elif abs(dt) <= p.max_extrapolation_s and side.size >= 2:
                a, b = (side[-2], side[-1]) if secs[k] <= 0 else (side[1], side[0])
                span = secs[b] - secs[a]
                if span != 0:
                    f = (0.0 - secs[b]) / span
                    pos = (
                        lat[b] + f * (lat[b] - lat[a]),
                        lon[b] + f * (lon[b] - lon[a]),
                        "track_extrapolated",
                        abs(dt),
                    )
                    track = _track_motion(lat, lon, secs, min(a, b), max(a, b))
                    motion = tuple(m if np.isfinite(m) else tm for m, tm in zip(motion, track, strict=True))
            if pos is None and (abs(dt) <= p.max_unmoved_s or (np.isfinite(sog[k]) and sog[k] < 0.5)):
                pos = (lat[k], lon[k], "unmoved", abs(dt))
        if pos is not None:
            fix = g.iloc[k]
            rows.append(
                {
                    "mmsi": int(mmsi),
                    "lat": float(pos[0]),
                    "lon": float(pos[1]),
                    "length_m": length,
                    "method": pos[2],
                    "dt_s": float(pos[3]),
                    "sog_kn": float(motion[0]),
                    "cog_deg": float(motion[1]),
                    "heading_deg": float(fix["heading_deg"]),
                    **{
                        n: _first(g[n].to_numpy())
                        for n in (
                            "width_m",
                            "to_bow_m",
                            "to_stern_m",
                            "to_port_m",
                            "to_starboard_m",
                            "ship_type",
                        )
                    },
                    "nav_status": fix["nav_status"],
                }
            )
    out = pd.DataFrame(rows, columns=list(POSITION_COLUMNS))
    for n in NUMERIC:
        out[n] = out[n].astype(float)
    return out


def distance_matrix_m(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Ground distances (m) between every point of set 1 (rows) and set 2 (columns); local flat earth,
    accurate to well under 1 % at the few-kilometre scale where matching happens."""
    lat1, lon1 = np.asarray(lat1, float)[:, None], np.asarray(lon1, float)[:, None]
    lat2, lon2 = np.asarray(lat2, float)[None, :], np.asarray(lon2, float)[None, :]
    mid = np.radians((lat1 + lat2) / 2)
    dx = (lon2 - lon1) * _M_PER_DEG_LON_EQ * np.cos(mid)
    dy = (lat2 - lat1) * _M_PER_DEG_LAT
    return np.hypot(dx, dy)


def is_aft_bridge(ship_type: object) -> bool:
    """Cargo ship or tanker, by name or ITU type code (70-89)."""
    if ship_type is None or (isinstance(ship_type, float) and np.isnan(ship_type)):
        return False
    text = str(ship_type).strip().lower()
    try:
        return 70 <= float(text) < 90
    except ValueError:
        return any(t in text for t in AFT_BRIDGE_TYPES)


def _is_stationary(status: object) -> bool:
    if status is None or (isinstance(status, float) and np.isnan(status)):
        return False
    text = str(status).strip().lower()
    return text.removesuffix(".0") in STATIONARY_STATUS


def _corners_lonlat(d: Detection) -> np.ndarray:
    """The detected box's corners (k, 2) as lon, lat: its polygon's, else one from length, width, heading."""
    poly = d.polygon
    if poly is not None and not poly.is_empty and hasattr(poly, "exterior"):
        xy = np.asarray(poly.exterior.coords, float)[:-1, :2]
        if len(xy) >= 3:
            return xy
    h = np.radians(d.heading_deg or 0.0)
    u = np.array([np.sin(h), np.cos(h)]) * (d.length_m or 0.0) / 2  # east, north metres
    w = np.array([np.cos(h), -np.sin(h)]) * (d.width_m or 0.0) / 2
    m = np.array([u + w, u - w, -u - w, -u + w])
    scale = np.array([_M_PER_DEG_LON_EQ * np.cos(np.radians(d.lat)), _M_PER_DEG_LAT])
    return np.array([d.lon, d.lat]) + m / scale


@dataclass(frozen=True)
class ShipFrame:
    """How every detection (rows) sits against every AIS vessel (columns) in the ship's frame.

    Along is positive towards the bow, across towards starboard. The frame's axis is the AIS heading, else
    its course when moving, else the detection's own axis (then the bow's side is unknown and the hull is
    taken as reaching either way). The AIS hull is placed from the antenna by A/B/C/D, else by length,
    width and a typical antenna position for the ship type. Gaps are how far the detected box misses the
    hull along and across (0 where they overlap); offsets are from the hull centre to the box centre.
    """

    distance_m: np.ndarray
    gap_along_m: np.ndarray
    gap_across_m: np.ndarray
    allow_along_m: np.ndarray
    allow_across_m: np.ndarray
    along_m: np.ndarray
    across_m: np.ndarray
    shortfall: np.ndarray
    allowed: np.ndarray
    cost: np.ndarray


def ship_frame(
    detections: Sequence[Detection], pos: pd.DataFrame, params: AisParams | None = None
) -> ShipFrame:
    """Detections against AIS positions at image time (``ais_positions_at``) in each ship's frame."""
    p = params or AisParams()
    n, m = len(detections), len(pos)
    boxes = [_corners_lonlat(d) for d in detections]
    k = max((len(b) for b in boxes), default=4)
    corners = np.array([np.vstack([b, np.repeat(b[:1], k - len(b), axis=0)]) for b in boxes]).reshape(n, k, 2)
    det_lon = np.array([d.lon for d in detections], float)
    det_lat = np.array([d.lat for d in detections], float)
    det_axis = np.array([d.heading_deg or 0.0 for d in detections], float)
    a_lat, a_lon = pos["lat"].to_numpy(float), pos["lon"].to_numpy(float)
    sx = _M_PER_DEG_LON_EQ * np.cos(np.radians(a_lat))[None, :]
    cx = (corners[:, None, :, 0] - a_lon[None, :, None]) * sx[..., None]
    cy = (corners[:, None, :, 1] - a_lat[None, :, None]) * _M_PER_DEG_LAT
    ex = (det_lon[:, None] - a_lon[None, :]) * sx
    ey = (det_lat[:, None] - a_lat[None, :]) * _M_PER_DEG_LAT

    heading, cog, sog = (pos[c].to_numpy(float) for c in ("heading_deg", "cog_deg", "sog_kn"))
    ais_axis = np.where(np.isfinite(heading), heading, np.where(np.isfinite(cog) & (sog >= 1.0), cog, np.nan))
    signed = np.broadcast_to(np.isfinite(ais_axis)[None, :], (n, m))
    theta = np.radians(np.where(signed, ais_axis[None, :], det_axis[:, None]))
    st, ct = np.sin(theta), np.cos(theta)
    along = cx * st[..., None] + cy * ct[..., None]
    across = cx * ct[..., None] - cy * st[..., None]
    centre_along, centre_across = ex * st + ey * ct, ex * ct - ey * st

    length, width = pos["length_m"].to_numpy(float), pos["width_m"].to_numpy(float)
    bow, stern, port, starboard = (
        pos[x].to_numpy(float) for x in ("to_bow_m", "to_stern_m", "to_port_m", "to_starboard_m")
    )
    aft = np.array([is_aft_bridge(t) for t in pos["ship_type"]], bool)
    has_ab = np.isfinite(bow) & np.isfinite(stern)
    has_cd = np.isfinite(port) & np.isfinite(starboard)
    hull_len = np.where(has_ab, bow + stern, np.nan_to_num(length))
    spread = np.where(aft, p.aft_antenna_spread, p.antenna_spread) * hull_len
    hull_mid = np.where(has_ab, (bow - stern) / 2, np.where(aft, p.aft_antenna_fraction, 0.0) * hull_len)
    hull_half = np.where(has_ab, hull_len / 2, hull_len / 2 + spread)
    beam_mid = np.where(has_cd, (starboard - port) / 2, 0.0)
    beam_half = np.where(has_cd, (port + starboard) / 2, np.nan_to_num(width) / 2)

    def interval(mid: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        reach = np.abs(mid) + half  # unsigned axis: the hull may reach either way from the antenna
        lo = np.where(signed, (mid - half)[None, :], -reach[None, :])
        hi = np.where(signed, (mid + half)[None, :], reach[None, :])
        return lo, hi, np.where(signed, mid[None, :], 0.0)

    h_lo, h_hi, h_mid = interval(hull_mid, hull_half)
    w_lo, w_hi, w_mid = interval(beam_mid, beam_half)
    b_lo, b_hi = along.min(-1), along.max(-1)
    c_lo, c_hi = across.min(-1), across.max(-1)
    zero = np.zeros((n, m))
    gap_along = np.maximum.reduce([zero, h_lo - b_hi, b_lo - h_hi])
    gap_across = np.maximum.reduce([zero, w_lo - c_hi, c_lo - w_hi])

    stationary = np.array([_is_stationary(s) for s in pos["nav_status"]], bool)
    speed = np.where(np.isfinite(sog), sog, np.where(stationary, 0.0, p.default_speed_kn)) * _KNOT_MPS
    dt = pos["dt_s"].to_numpy(float)
    allow_along = (p.along_gate_m + speed * (p.scene_time_uncertainty_s + p.reckon_error_fraction * dt))[
        None, :
    ]
    allow_across = (p.across_gate_m + speed * p.reckon_error_fraction * dt)[None, :]
    radar = np.array([det.sensor == "S1" for det in detections], bool)[:, None]
    doppler = np.where(radar, (speed * p.sar_azimuth_shift_s)[None, :], 0.0)
    allow_along, allow_across = allow_along + doppler, allow_across + doppler

    off_along, off_across = centre_along - h_mid, centre_across - w_mid
    box_len = b_hi - b_lo
    with np.errstate(invalid="ignore", divide="ignore"):
        shortfall = np.where(
            hull_len > 0, np.clip((hull_len[None, :] - box_len) / hull_len[None, :], 0, 1), 0.0
        )
    centre = np.hypot(
        off_along / (box_len / 2 + (h_hi - h_lo) / 2 + allow_along),
        off_across / ((c_hi - c_lo) / 2 + (w_hi - w_lo) / 2 + allow_across),
    )
    distance = np.hypot(ex, ey)
    allowed = (distance <= p.max_distance_m) & (gap_along <= allow_along) & (gap_across <= allow_across)
    cost = (
        gap_along / allow_along
        + gap_across / allow_across
        + p.centre_weight * centre
        + p.length_weight * shortfall
    )
    return ShipFrame(
        distance_m=distance,
        gap_along_m=gap_along,
        gap_across_m=gap_across,
        allow_along_m=allow_along,
        allow_across_m=allow_across,
        along_m=off_along,
        across_m=off_across,
        shortfall=shortfall,
        allowed=allowed,
        cost=cost,
    )


@dataclass(frozen=True)
class AisMatch:
    """One pairing of a detection (index into the input list) with an AIS vessel.

    ``along_m``/``across_m``: the detected box centre from the AIS hull centre in the ship's frame (None
    with the legacy matcher)."""

    detection_index: int
    mmsi: int
    distance_m: float
    dt_s: float
    method: str
    ais_length_m: float | None
    along_m: float | None = None
    across_m: float | None = None


@dataclass(frozen=True)
class AisMatchResult:
    """Detections with ``dark``/``mmsi`` properties, the pairings, and AIS vessels nobody matched."""

    detections: list[Detection]
    matches: list[AisMatch]
    unmatched_mmsi: tuple[int, ...]

    @property
    def n_dark(self) -> int:
        return sum(1 for d in self.detections if d.properties.get("dark"))

    @property
    def n_matched(self) -> int:
        return len(self.matches)

    @property
    def mmsi_by_detection(self) -> list[int | None]:
        return [d.properties.get("mmsi") for d in self.detections]


def _legacy_terms(
    dets: Sequence[Detection], pos: pd.DataFrame, p: AisParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance, allowed and cost of the isotropic matcher (``AisParams.legacy()``)."""
    det_lat = np.array([d.lat for d in dets])
    det_lon = np.array([d.lon for d in dets])
    det_len = np.array([d.length_m or np.nan for d in dets], float)
    dist = distance_matrix_m(det_lat, det_lon, pos["lat"].to_numpy(), pos["lon"].to_numpy())
    ais_len = pos["length_m"].to_numpy()[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(det_len[:, None] - ais_len) / ais_len
    rel = np.where(np.isfinite(rel), rel, 0.0)
    allowed = (dist <= p.max_distance_m) & (rel <= p.length_tolerance)
    return dist, allowed, dist / p.max_distance_m + p.length_weight * rel


def match_ais(
    detections: Sequence[Detection],
    ais: pd.DataFrame,
    params: AisParams | None = None,
    *,
    when: datetime | None = None,
) -> AisMatchResult:
    """Pair detections with AIS one-to-one; unpaired detections get ``dark: true``.

    Detections are grouped by their ``acquired`` time (``when`` overrides it); each group is matched
    against AIS positions brought to that time. With ``ship_frame`` (the default) a pair is allowed when the
    AIS hull and the detected box miss each other by no more than the along gate (plus speed × the image's
    timing uncertainty and the dead-reckoning error) and the across gate (``ShipFrame``); its cost adds
    those gaps (each over its gate), the box-to-hull centre distance and the share of the hull the box is
    too short to cover. The legacy matcher pairs by distance between centres and relative length.
    """
    p = params or AisParams()
    out: list[Detection] = list(detections)
    matches: list[AisMatch] = []
    unmatched: set[int] = set()
    groups: dict[datetime, list[int]] = {}
    for i, d in enumerate(out):
        t = when or d.acquired
        if t is None:
            raise InputError(f"detection {i} has no acquisition time; pass when=")
        groups.setdefault(t, []).append(i)
    for t, idx in groups.items():
        pos = ais_positions_at(ais, t, p)
        frame = None
        if not len(pos):
            dist, paired = np.zeros((len(idx), 0)), {}
        else:
            group = [out[i] for i in idx]
            if p.ship_frame:
                frame = ship_frame(group, pos, p)
                dist, allowed, cost = frame.distance_m, frame.allowed, frame.cost
            else:
                dist, allowed, cost = _legacy_terms(group, pos, p)
            rows, cols = linear_sum_assignment(np.where(allowed, cost, 1e6))
            paired = {r: c for r, c in zip(rows, cols, strict=True) if allowed[r, c]}
        for r, i in enumerate(idx):
            if r in paired:
                c = paired[r]
                rec = pos.iloc[c]
                length = float(rec["length_m"]) if np.isfinite(rec["length_m"]) else None
                along = round(float(frame.along_m[r, c]), 1) if frame is not None else None
                across = round(float(frame.across_m[r, c]), 1) if frame is not None else None
                m = AisMatch(
                    i,
                    int(rec["mmsi"]),
                    float(dist[r, c]),
                    float(rec["dt_s"]),
                    str(rec["method"]),
                    length,
                    along,
                    across,
                )
                matches.append(m)
                extra = {} if frame is None else {"ais_along_m": along, "ais_across_m": across}
                out[i] = out[i].with_properties(
                    dark=False,
                    mmsi=m.mmsi,
                    ais_distance_m=round(m.distance_m, 1),
                    ais_dt_s=round(m.dt_s, 1),
                    ais_method=m.method,
                    ais_length_m=length,
                    **extra,
                )
            else:
                out[i] = out[i].with_properties(dark=True, mmsi=None)
        taken = {int(pos.iloc[c]["mmsi"]) for c in paired.values()}
        unmatched |= {int(m) for m in pos["mmsi"]} - taken if len(pos) else set()
    return AisMatchResult(detections=out, matches=matches, unmatched_mmsi=tuple(sorted(unmatched)))


def dark_count(detections: Sequence[Detection]) -> int:
    """Number of detections marked ``dark`` (for the daily table's dark column)."""
    return sum(1 for d in detections if d.properties.get("dark") is True)
