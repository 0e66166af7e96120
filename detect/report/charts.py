"""Charts of a run: daily counts per zone and the map of one day's detections."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detect.counting.aggregate import ALL_ZONE, OBSERVED_UNMASKED
from imagery.atomic import atomic_write_bytes


def plot_counts(daily: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """Daily counts per zone and class: bars for observed days, dotted bars for days seen without a cloud
    mask (``observed-unmasked``: the count may be low), hatched bars for partial days (floors), pale grey
    columns with ✕ marks for unobserved days — never a zero bar. Days counted from Sentinel-1
    (``sensor`` column) are hollow bars."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    groups = list(daily.groupby(["zone", "class"], sort=False))
    groups.sort(key=lambda g: (g[0][0] != ALL_ZONE, g[0]))
    n = max(1, len(groups))
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.4 * n + 0.8), sharex=True, squeeze=False)
    for ax, ((zone, cls), g) in zip(axes[:, 0], groups, strict=False):
        g = g.sort_values("date")
        x = pd.to_datetime(g["date"])
        counts = g["count"].astype("Float64")
        top = float(counts.max()) if counts.notna().any() else 1.0
        top = max(top, 1.0)
        radar = (g["sensor"] == "S1").to_numpy() if "sensor" in g else np.zeros(len(g), bool)
        obs = (g["status"] == "observed").to_numpy()
        unmasked = (g["status"] == OBSERVED_UNMASKED).to_numpy()
        part = (g["status"] == "partial").to_numpy()
        unobs = (g["status"] == "unobserved").to_numpy()
        vals = counts.fillna(0).to_numpy(dtype=float)
        # Sentinel-1 days are hollow bars: the same count scale, another sensor (see the report).
        for sel, face in ((~radar, "#1f77b4"), (radar, "white")):
            ax.bar(x[obs & sel], vals[obs & sel], width=0.8, facecolor=face, edgecolor="#1f77b4", lw=1.2)
        for days, hatch, pale in ((part, "///", "#aec7e8"), (unmasked, "...", "#deebf7")):
            for sel, face in ((~radar, pale), (radar, "white")):
                ax.bar(
                    x[days & sel],
                    vals[days & sel],
                    width=0.8,
                    facecolor=face,
                    hatch=hatch,
                    edgecolor="#1f77b4",
                    lw=1.2,
                )
        zero = (obs | unmasked | part) & (vals == 0)  # seen and empty: a real zero, marked on the axis
        ax.plot(x[zero], np.zeros(int(zero.sum())), "_", color="#1f77b4", ms=9, mew=2, clip_on=False)
        # Unobserved days: a pale full-height column and a ✕ at the foot, never a bar of height 0.
        ax.bar(x[unobs], np.full(int(unobs.sum()), top * 1.15), width=0.8, color="#e6e6e6", lw=0, zorder=0)
        ax.plot(x[unobs], np.full(int(unobs.sum()), top * 0.05), "x", color="#636363", ms=5)
        ax.set_ylim(0, top * 1.15)
        ax.set_ylabel(f"{cls}s")
        ax.set_title(f"zone: {zone}", fontsize=9, loc="left")
        ax.grid(axis="y", alpha=0.3)
    handles = [
        Patch(color="#1f77b4", label="observed"),
        Patch(facecolor="#aec7e8", hatch="///", edgecolor="#1f77b4", label="partial (count is a floor)"),
        Patch(facecolor="#e6e6e6", label="unobserved: no count (✕)"),
    ]
    if (daily["status"] == OBSERVED_UNMASKED).any():
        handles.insert(
            1,
            Patch(
                facecolor="#deebf7",
                hatch="...",
                edgecolor="#1f77b4",
                label="no cloud mask (count may be low)",
            ),
        )
    if "sensor" in daily and (daily["sensor"] == "S1").any():
        handles.append(Patch(facecolor="white", edgecolor="#1f77b4", label="hollow: Sentinel-1 (radar) day"))
    axes[0, 0].legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8,
        ncol=len(handles),
        frameon=False,
    )
    if title:
        fig.suptitle(title, fontsize=11)
    fig.autofmt_xdate()
    height = fig.get_figheight()
    # Fixed margins (in inches) instead of tight_layout, which costs more than the drawing itself.
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.55 / height, bottom=0.85 / height, hspace=0.5)
    return _save_fig(fig, path)


def plot_map(
    rgb: np.ndarray | None,
    grid: Any,
    detections: pd.DataFrame,
    path: Path,
    *,
    zones: dict[str, Any] | None = None,
    title: str = "",
) -> Path:
    """One scene's detections (outlines) over its true-colour image, on the AOI grid in metres.

    ``rgb`` is (3, H, W) reflectance (B04, B03, B02) or None (then detections on a blank frame).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from imagery.aoi import to_crs

    left, bottom, right, top = grid.bounds
    fig, ax = plt.subplots(figsize=(8, 8 * grid.height / max(grid.width, 1) + 0.5))
    if rgb is not None:
        ax.imshow(stretch_rgb(rgb), extent=(left, right, bottom, top), origin="upper")
    else:
        ax.set_facecolor("#eeeeee")
        ax.text(0.5, 0.5, "imagery not available", transform=ax.transAxes, ha="center", color="#888888")
    for name, geom in (zones or {}).items():
        for part in getattr(geom, "geoms", [geom]):
            if part.geom_type == "Polygon":
                xs, ys = part.exterior.xy
                ax.plot(xs, ys, color="#ffd400", lw=1, alpha=0.8)
        if name != ALL_ZONE:
            c = geom.representative_point()
            ax.text(c.x, c.y, name, color="#ffd400", fontsize=7)
    for rec in detections.to_dict("records"):
        poly = to_crs(rec["geometry"], grid.crs)
        xs, ys = poly.exterior.xy
        ax.plot(xs, ys, color="#ff2d2d", lw=1.2)
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_xlabel(f"easting (m, {grid.crs})")
    ax.set_ylabel("northing (m)")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
    ax.set_title(title or f"{len(detections)} detections", fontsize=10)
    fig.tight_layout()
    return _save_fig(fig, path)


#: Verdict → colour of its title in the claims chart.
VERDICT_COLOURS = {"consistent": "#2ca02c", "inconsistent": "#d62728", "cannot tell": "#ff7f0e"}


def plot_claims(verdicts: Sequence[Any], summaries: Sequence[Any | None], path: Path) -> Path:
    """One panel per claim: the claimed figure beside what the imagery shows over the claim's period,
    zone, class and lengths (``summaries``: ``VisitSummary`` or None, in the order of ``verdicts``): the
    distinct-vessel lower bound, the most vessels at once and, when every day was seen in full, the
    ceiling; titled with the verdict and its reason."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = max(1, len(verdicts))
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.2 * n), squeeze=False)
    for ax, v, s in zip(axes[:, 0], verdicts, summaries, strict=False):
        c = v.claim
        noun = f"{c.subject or c.class_name + 's'}" + (
            f" ≥ {c.min_length_m:g} m" if c.min_length_m is not None else ""
        )
        what = {
            "distinct_vessels_min": "distinct",
            "max_simultaneous": "at one time",
            "vessel_days": "vessel-days",
        }[c.metric]
        bars = [(f"claimed: {c.comparison} {c.value:g} {what}", float(c.value), "#7f7f7f", "//")]
        if s is not None:
            bars += [
                ("distinct vessels: lower bound", s.distinct_min, "#1f77b4", ""),
                (
                    f"most at once ({s.max_simultaneous_date or 'no day seen'})",
                    s.max_simultaneous,
                    "#6baed6",
                    "",
                ),
            ]
            if c.metric == "vessel_days":
                bars.append(("vessel-days seen", s.vessel_days, "#9ecae1", ""))
        if v.upper is not None:
            bars.append(("ceiling: every day seen, each sighting a new vessel", v.upper, "#c6dbef", ".."))
        labels = [b[0] for b in bars][::-1]
        values = [np.nan if b[1] is None else float(b[1]) for b in bars][::-1]
        ax.barh(
            labels,
            np.nan_to_num(values),
            color=[b[2] for b in bars][::-1],
            hatch=None,
            edgecolor="#333333",
        )
        for i, (b, val) in enumerate(zip(bars[::-1], values, strict=True)):
            if b[3]:
                ax.patches[i].set_hatch(b[3])
            ax.text(
                0 if np.isnan(val) else val,
                i,
                " no day seen" if np.isnan(val) else f" {val:g}",
                va="center",
                fontsize=9,
            )
        ax.axvline(float(c.value), color="#333333", ls="--", lw=1)
        top = max([float(c.value), *[x for x in values if not np.isnan(x)]])
        ax.set_xlim(0, top * 1.2 + 1)
        ax.tick_params(labelsize=8)
        ax.set_xlabel(
            f"{noun} at {c.aoi}" + (f" ({c.zone})" if c.zone != ALL_ZONE else "") + f", {c.start} – {c.end}",
            fontsize=8,
        )
        why = [r for r in v.reasons[1:] if not r.startswith(("the claim is about", "only detections"))]
        text = "; ".join([v.reasons[0], *why[-1:]]) if v.reasons else ""
        ax.set_title(
            f"{c.id}: {v.verdict}\n" + textwrap.fill(text, 120),
            fontsize=8.5,
            loc="left",
            color=VERDICT_COLOURS.get(v.verdict, "#333333"),
        )
    if not verdicts:
        axes[0, 0].text(0.5, 0.5, "no claims", ha="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    return _save_fig(fig, path)


def plot_baseline(comparisons: Sequence[Any], path: Path) -> Path:
    """The ratio of mean daily counts (period / baseline) per zone and class with its bootstrap interval,
    on a log axis around 1 (no change); comparisons without an interval are drawn as hollow points."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    n = max(1, len(comparisons))
    fig, ax = plt.subplots(figsize=(8, 0.5 * n + 1.4))
    finite = [
        x
        for c in comparisons
        for x in (c.ratio, c.ratio_low, c.ratio_high)
        if x is not None and np.isfinite(x) and x > 0
    ]
    lo_lim = min([0.5, *finite]) / 1.5
    hi_lim = max([2.0, *finite]) * 1.5
    for i, c in enumerate(comparisons):
        y = n - 1 - i
        colour = {"higher": "#d62728", "lower": "#1f77b4"}.get(c.reading, "#7f7f7f")
        if c.ratio_low is not None and c.ratio_high is not None:
            lo = max(c.ratio_low, lo_lim) if c.ratio_low > 0 else lo_lim
            hi = min(c.ratio_high, hi_lim)
            ax.plot([lo, hi], [y, y], color=colour, lw=2.5, solid_capstyle="butt")
        if c.ratio is not None:
            r = min(max(c.ratio, lo_lim), hi_lim) if c.ratio > 0 else lo_lim
            hollow = c.ratio_low is None
            ax.plot(r, y, "o", color=colour, mfc="white" if hollow else colour, ms=7)
        ax.text(hi_lim, y, f"  {c.reading}", va="center", fontsize=8, color=colour)
    ax.axvline(1.0, color="#333333", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(lo_lim, hi_lim)
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 10, 20, 50) if lo_lim <= t <= hi_lim]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{c.zone} · {c.class_name}" for c in comparisons][::-1], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    level = f"{comparisons[0].confidence:.0%}" if comparisons else ""
    ax.set_xlabel(
        f"mean daily count, period / baseline (log scale; bars: {level} bootstrap interval)", fontsize=8
    )
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    return _save_fig(fig, path)


def stretch_rgb(rgb: np.ndarray, low: float = 2, high: float = 98) -> np.ndarray:
    """(3, H, W) reflectance → (H, W, 3) 0–1 with a per-image percentile stretch; no data is black."""
    arr = np.moveaxis(np.asarray(rgb, dtype=np.float32), 0, -1)
    finite = np.isfinite(arr).all(axis=-1)
    out = np.zeros_like(arr)
    if finite.any():
        lo, hi = np.percentile(arr[finite], [low, high])
        out = np.clip((np.nan_to_num(arr) - lo) / max(hi - lo, 1e-6), 0, 1)
        out[~finite] = 0
    return out


def _save_fig(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    # Low zlib effort: these PNGs are mostly imagery, where high effort costs seconds and saves little.
    fig.savefig(buf, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
