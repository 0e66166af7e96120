"""AIS matching: which detected vessels were transmitting, and which were "dark".

A user supplies AIS positions (CSV or Parquet: mmsi, timestamp, lat, lon; optional sog, cog, length).
Each AIS track is brought to the image time (linear interpolation between bracketing fixes, else
dead reckoning from the nearest fix with SOG/COG, within limits), then detections and AIS positions
are paired one-to-one (Hungarian assignment on distance plus length disagreement, within gates).
Detections left without a partner are marked ``dark``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Geod
from scipy.optimize import linear_sum_assignment

from detect.core.geometry import Detection
from imagery.errors import InputError

REQUIRED = ("mmsi", "timestamp", "lat", "lon")
OPTIONAL = ("sog_kn", "cog_deg", "length_m")
#: Accepted spellings (lower case) of each column; MarineCadastre's BaseDateTime/LAT/LON/SOG/COG/Length fit.
ALIASES: dict[str, tuple[str, ...]] = {
    "mmsi": ("mmsi", "ship_id", "vessel_id"),
    "timestamp": ("timestamp", "basedatetime", "base_date_time", "datetime", "time", "ts", "timestamp_utc"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "sog_kn": ("sog_kn", "sog", "speed", "speed_kn"),
    "cog_deg": ("cog_deg", "cog", "course"),
    "length_m": ("length_m", "length", "loa", "ship_length"),
}
_KNOT_MPS = 1852.0 / 3600.0
_GEOD = Geod(ellps="WGS84")


class AisError(InputError):
    """AIS input is missing, unreadable or lacks a required column."""


@dataclass(frozen=True)
class AisParams:
    """Gates and limits for bringing AIS to the image time and pairing it with detections."""

    #: Only fixes within this many seconds of the image time are used.
    time_window_s: float = 1800.0
    #: A detection and an AIS position farther apart than this are never paired.
    max_distance_m: float = 500.0
    #: Bracketing fixes farther apart in time than this are not interpolated between.
    max_interp_gap_s: float = 1800.0
    #: Dead reckoning from one fix (SOG/COG, or the velocity of the last two fixes) up to this long.
    max_extrapolation_s: float = 900.0
    #: A fix with no motion information stands for the position up to this long (moored, anchored).
    max_unmoved_s: float = 600.0
    #: Pairs whose lengths disagree by more than this fraction of the AIS length are not paired.
    length_tolerance: float = 0.6
    #: Weight of the relative length difference against distance / max_distance_m in the cost.
    length_weight: float = 0.5


def _pick(columns: Sequence[str], name: str) -> str | None:
    lower = {c.lower().strip(): c for c in columns}
    for alias in ALIASES[name]:
        if alias in lower:
            return lower[alias]
    return None


def normalise_ais(df: pd.DataFrame, source: str = "AIS table") -> pd.DataFrame:
    """Columns renamed to mmsi, timestamp (UTC), lat, lon, sog_kn, cog_deg, length_m; bad rows dropped.

    Naive timestamps are taken as UTC (AIS feeds log UTC). Rows are sorted by mmsi and time, and
    repeated (mmsi, timestamp) fixes are kept once.
    """
    found = {name: _pick(list(df.columns), name) for name in ALIASES}
    missing = [n for n in REQUIRED if found[n] is None]
    if missing:
        raise AisError(
            f"{source} lacks column(s) {', '.join(missing)}; has {', '.join(map(str, df.columns))} "
            f"(needs mmsi, timestamp, lat, lon; optional sog, cog, length)"
        )
    out = pd.DataFrame({n: df[c] for n, c in found.items() if c is not None})
    for n in OPTIONAL:
        if n not in out:
            out[n] = np.nan
    try:
        ts = pd.to_datetime(out["timestamp"], utc=True)
    except (ValueError, TypeError) as e:
        raise AisError(f"{source}: timestamps cannot be parsed ({e})") from None
    out["timestamp"] = ts
    out["mmsi"] = pd.to_numeric(out["mmsi"], errors="coerce").astype("Int64")
    for n in ("lat", "lon", *OPTIONAL):
        out[n] = pd.to_numeric(out[n], errors="coerce").astype(float)
    # AIS "not available" codes: SOG 102.3 kn, COG 360, lat 91, lon 181.
    out.loc[out["sog_kn"] >= 102.3, "sog_kn"] = np.nan
    out.loc[(out["cog_deg"] < 0) | (out["cog_deg"] >= 360), "cog_deg"] = np.nan
    out.loc[out["length_m"] <= 0, "length_m"] = np.nan
    ok = (
        out["mmsi"].notna()
        & out["timestamp"].notna()
        & out["lat"].between(-90, 90)
        & out["lon"].between(-180, 180)
    )
    out = out[ok].astype({"mmsi": "int64"})
    out = out.sort_values(["mmsi", "timestamp"], kind="stable").drop_duplicates(["mmsi", "timestamp"])
    return out[list(REQUIRED + OPTIONAL)].reset_index(drop=True)


def load_ais(path: str | Path) -> pd.DataFrame:
    """Read AIS positions from a CSV (``.csv``, ``.csv.gz``) or Parquet file and normalise them."""
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
    return normalise_ais(df, str(path))


def _utc(when: datetime) -> pd.Timestamp:
    if when.tzinfo is None:
        raise ValueError("image time must be timezone-aware (UTC)")
    return pd.Timestamp(when.astimezone(timezone.utc))


def ais_positions_at(ais: pd.DataFrame, when: datetime, params: AisParams | None = None) -> pd.DataFrame:
    """Each vessel's position at ``when``: mmsi, lat, lon, length_m, method, dt_s (to the fix used).

    ``method`` is ``interpolated`` (between bracketing fixes), ``dead_reckoned`` (SOG/COG from the
    nearest fix), ``track_extrapolated`` (velocity of its two nearest fixes on one side) or ``unmoved``
    (a nearby fix with no motion information). Vessels with no usable fix are left out.
    """
    p = params or AisParams()
    t = _utc(when)
    win = ais[(ais["timestamp"] - t).abs() <= pd.Timedelta(seconds=p.time_window_s)]
    rows = []
    for mmsi, g in win.groupby("mmsi", sort=True):
        secs = (g["timestamp"] - t).dt.total_seconds().to_numpy()
        lat, lon = g["lat"].to_numpy(), g["lon"].to_numpy()
        sog, cog = g["sog_kn"].to_numpy(), g["cog_deg"].to_numpy()
        length = float(np.nanmax(g["length_m"].to_numpy())) if g["length_m"].notna().any() else np.nan
        before, after = np.nonzero(secs <= 0)[0], np.nonzero(secs >= 0)[0]
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
        if pos is None:
            k = int(np.argmin(np.abs(secs)))
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
            if pos is None and (abs(dt) <= p.max_unmoved_s or (np.isfinite(sog[k]) and sog[k] < 0.5)):
                pos = (lat[k], lon[k], "unmoved", abs(dt))
        if pos is not None:
            rows.append(
                {
                    "mmsi": int(mmsi),
                    "lat": float(pos[0]),
                    "lon": float(pos[1]),
                    "length_m": length,
                    "method": pos[2],
                    "dt_s": float(pos[3]),
                }
            )
    return pd.DataFrame(rows, columns=["mmsi", "lat", "lon", "length_m", "method", "dt_s"])


def distance_matrix_m(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Ground distances (m) between every point of set 1 (rows) and set 2 (columns); local flat earth,
    accurate to well under 1 % at the few-kilometre scale where matching happens."""
    lat1, lon1 = np.asarray(lat1, float)[:, None], np.asarray(lon1, float)[:, None]
    lat2, lon2 = np.asarray(lat2, float)[None, :], np.asarray(lon2, float)[None, :]
    mid = np.radians((lat1 + lat2) / 2)
    dx = (lon2 - lon1) * 111_320.0 * np.cos(mid)
    dy = (lat2 - lat1) * 110_574.0
    return np.hypot(dx, dy)


@dataclass(frozen=True)
class AisMatch:
    """One pairing of a detection (index into the input list) with an AIS vessel."""

    detection_index: int
    mmsi: int
    distance_m: float
    dt_s: float
    method: str
    ais_length_m: float | None


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


def match_ais(
    detections: Sequence[Detection],
    ais: pd.DataFrame,
    params: AisParams | None = None,
    *,
    when: datetime | None = None,
) -> AisMatchResult:
    """Pair detections with AIS one-to-one; unpaired detections get ``dark: true``.

    Detections are grouped by their ``acquired`` time (``when`` overrides it); each group is
    matched against AIS positions brought to that time. Cost of a pair: distance / max_distance_m
    + length_weight × |length difference| / AIS length (length term only when both are known);
    pairs beyond the distance gate or the length tolerance are never made.
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
        det_lat = np.array([out[i].lat for i in idx])
        det_lon = np.array([out[i].lon for i in idx])
        det_len = np.array([out[i].length_m or np.nan for i in idx], float)
        if len(pos):
            dist = distance_matrix_m(det_lat, det_lon, pos["lat"].to_numpy(), pos["lon"].to_numpy())
            ais_len = pos["length_m"].to_numpy()[None, :]
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.abs(det_len[:, None] - ais_len) / ais_len
            rel = np.where(np.isfinite(rel), rel, 0.0)
            allowed = (dist <= p.max_distance_m) & (rel <= p.length_tolerance)
            cost = np.where(allowed, dist / p.max_distance_m + p.length_weight * rel, 1e6)
            rows, cols = linear_sum_assignment(cost)
            paired = {r: c for r, c in zip(rows, cols, strict=True) if allowed[r, c]}
        else:
            dist, paired = np.zeros((len(idx), 0)), {}
        for r, i in enumerate(idx):
            if r in paired:
                c = paired[r]
                rec = pos.iloc[c]
                length = float(rec["length_m"]) if np.isfinite(rec["length_m"]) else None
                m = AisMatch(
                    i, int(rec["mmsi"]), float(dist[r, c]), float(rec["dt_s"]), str(rec["method"]), length
                )
                matches.append(m)
                out[i] = out[i].with_properties(
                    dark=False,
                    mmsi=m.mmsi,
                    ais_distance_m=round(m.distance_m, 1),
                    ais_dt_s=round(m.dt_s, 1),
                    ais_method=m.method,
                    ais_length_m=length,
                )
            else:
                out[i] = out[i].with_properties(dark=True, mmsi=None)
        taken = {int(pos.iloc[c]["mmsi"]) for c in paired.values()}
        unmatched |= {int(m) for m in pos["mmsi"]} - taken if len(pos) else set()
    return AisMatchResult(detections=out, matches=matches, unmatched_mmsi=tuple(sorted(unmatched)))


def dark_count(detections: Sequence[Detection]) -> int:
    """Number of detections marked ``dark`` (for the daily table's dark column)."""
    return sum(1 for d in detections if d.properties.get("dark") is True)
