"""The report's content as blocks (headings, paragraphs, tables, images): what a run found, how far
to trust it, and which model found it. ``render`` turns blocks into Markdown and HTML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from detect.counting.aggregate import (
    ALL_ZONE,
    COUNT_REL_ERROR,
    DAILY_COLUMNS,
    OBSERVED_UNMASKED,
    unobserved_class_counts,
)
from detect.counting.baseline import CAN_AND_CANNOT, PeriodComparison, comparison_table
from detect.report.provenance import ModelInfo

CAVEATS = (
    "Sentinel-2 sees each place at most once a day, at about 10:30 local solar time: a count is a "
    "snapshot, and vessels that arrive and leave between overpasses are never seen.",
    "Clouds, cloud shadow and missing data hide vessels. Days without a clear view are `unobserved` and "
    "have no count (not zero); `partial` days count only the part that was seen, so their counts are floors.",
    "The ship model was trained on vessels of about 40 m and longer; small craft (fishing boats, tugs, "
    "barges alongside) are unlabelled in its training data and mostly missed.",
    "Imagery shows hulls, not flags, names or cargo: nationality and ownership cannot be read from it.",
    "Two scenes on one day (overlapping tiles) are never added: the one that saw most of each zone is used.",
)

#: Caveats of a run that used Sentinel-1 (radar).
S1_CAVEATS = (
    "Sentinel-1 passes at about 06:00 and 18:00 local solar time (dawn–dusk orbit), every 6–12 days: an S1 "
    "day is a snapshot at another hour than an S2 day.",
    "Sentinel-1 and Sentinel-2 see different vessels: the radar CFAR detector finds small boats only when "
    "they are bright (20 m needs ~10 dB over the sea clutter), merges ships moored side by side, reads "
    "lengths from bright scatterers (often longer than the hull), and sees no colour; ships moored "
    "within its 30 m shore buffer of a quay may be lost. The optical model misses small craft too. Read a "
    "mixed series with its `sensor` column: a change between an S2 day and an S1 day may be the sensor, "
    "not the port.",
    "A day is counted from Sentinel-2 when S2 saw at least the observed threshold of the zone, else from "
    "the scene that saw most (usually S1 under cloud); two sensors on one day are never added.",
)

#: Caveats of a run that matched AIS (``{distance}``, ``{minutes}``: the gates used).
AIS_CAVEATS = (
    "`dark` means no AIS position within the gates ({gates}) at the image time, not proof of wrongdoing: "
    "AIS coverage has gaps (terrestrial receivers' range, "
    "satellite AIS revisit, crowded ports where messages collide), small craft need not carry AIS, and the "
    "feed given may be incomplete.",
    "AIS can be spoofed or wrong (false positions, borrowed MMSIs, wrong lengths): a matched detection is "
    "only as good as the message it matched.",
    "Scenes with no AIS fix within the time window at all are left unassessed (`dark_count` NA), not "
    "counted as all dark.",
)

Block = tuple[Any, ...]


def ais_gates_text(params: dict[str, Any]) -> str:
    """The AIS matching gates of a run in words (``detect.counting.ais.AisParams`` as a dict)."""
    minutes = params.get("time_window_s", 1800.0) / 60
    if params.get("ship_frame", True):
        return (
            "the AIS hull, placed from its antenna along the heading, within "
            f"{params.get('across_gate_m', 20.0):.0f} m across and "
            f"{params.get('along_gate_m', 30.0):.0f} m + speed × "
            f"{params.get('scene_time_uncertainty_s', 10.0):.0f} s along the detected box, ±{minutes:.0f} min"
        )
    return f"{params.get('max_distance_m', 500.0):.0f} m, ±{minutes:.0f} min, similar length"


#: What the report says about the map page's needs (``detect.report.map`` makes it so).
MAP_OFFLINE_NOTE = (
    "It works offline from the run folder (Leaflet is inside the page, the day images are in map_files/); "
    "only its optional OpenStreetMap base layer needs internet."
)


def report_blocks(
    *,
    aoi: Any,
    start: date,
    end: date,
    parameters: dict[str, Any],
    scenes: pd.DataFrame,
    daily: pd.DataFrame,
    visits: Sequence[Any],
    verdicts: Sequence[Any],
    model: ModelInfo,
    images: dict[str, str],
    crops: pd.DataFrame | None = None,
    low_score: dict[str, float] | None = None,
    baseline: Sequence[PeriodComparison] = (),
) -> list[Block]:
    """The report's content as blocks: ("h", level, text), ("p", text), ("ul", items), ("table", df),
    ("img", src, alt), ("link", href, text, rest of the paragraph) and ("crops", rows of ``crops.csv``).

    ``images``: file names of ``counts``, ``map`` (with ``map_caption``), ``claims``, ``baseline`` and the
    interactive ``map_html``; ``crops``: every counted detection's crop; ``baseline``: the period against
    the baseline period."""
    b: list[Block] = [("h", 1, f"harborwatch run: {aoi.name}, {start} – {end}")]
    n_days = (end - start).days + 1
    all_rows = daily[daily["zone"] == ALL_ZONE]
    first_class = all_rows["class"].iloc[0] if len(all_rows) else None
    status = all_rows[all_rows["class"] == first_class]["status"].value_counts()
    b.append(
        (
            "p",
            f"{aoi.description or aoi.name}. Period {start} to {end} ({n_days} days, UTC dates of "
            f"the overpasses): {status.get('observed', 0)} observed, "
            + (
                f"{status[OBSERVED_UNMASKED]} observed without a cloud mask, "
                if status.get(OBSERVED_UNMASKED)
                else ""
            )
            + f"{status.get('partial', 0)} partial, {status.get('unobserved', 0)} unobserved (whole AOI).",
        )
    )
    looked = scenes[scenes["status"].isin(("clear", "partial", "cloudy", "unknown"))]
    sensors = list(parameters.get("sensors") or ["S2"])
    collections = parameters.get("collections") or {sensors[0]: parameters.get("collection")}
    first_rows = all_rows[all_rows["class"] == first_class]
    seen = first_rows[first_rows["status"] != "unobserved"]
    s1_days = sorted(seen.loc[seen["sensor"] == "S1", "date"]) if "sensor" in seen else []
    l1c = bool((scenes["processing_level"] == "L1C").any())
    trucks = bool((daily["class"] == "truck").any())
    # the haze index beside the daily counts: where L1C or trucks make haze matter (weights' "Level-1C input")
    show_haze = (l1c or trucks) and "dark_b02" in scenes
    ais = parameters.get("ais")
    b.append(
        (
            "ul",
            [
                f"AOI: `{aoi.name}` ({aoi.kind}), bbox {', '.join(f'{v:.4f}' for v in aoi.bbox)}; zones: "
                f"{', '.join(sorted(set(daily['zone'])))}"
                + (f"; boundaries: {aoi.source}" if aoi.source else ""),
                f"Source: `{parameters.get('source')}`, "
                + ", ".join(f"{sn} collection `{c}`" for sn, c in collections.items())
                + f"; {len(scenes)} scene(s) found, {len(looked)} looked at, "
                f"{int((scenes['status'] == 'failed').sum())} failed, "
                f"{int((scenes['status'] == 'nodata').sum())} no data",
                "Sensors: "
                + ", ".join(f"{sn} ({int((scenes['sensor'] == sn).sum())} scene(s))" for sn in sensors)
                + (
                    f"; days counted from Sentinel-1 (whole AOI): {len(s1_days)}"
                    + (f" ({', '.join(str(d) for d in s1_days)})" if s1_days else "")
                    if "S1" in sensors
                    else ""
                ),
                f"Classes: {', '.join(parameters.get('classes', []))}; detector: {model.method}"
                + ("; Sentinel-1 ships: `cfar`" if "S1" in sensors and model.method != "cfar" else ""),
                (
                    f"AIS: {ais['fixes']} fixes of {ais['vessels']} vessels ({ais['first']} – {ais['last']})"
                    + (f" from `{ais['file']}`" if ais.get("file") else "")
                    if ais
                    else "AIS: none given, so no detection is called dark (`dark_count` NA)"
                ),
            ],
        )
    )
    b.append(("h", 2, "Model"))
    b.append(("p", _model_text(model)))
    if "S1" in sensors and model.method != "cfar":
        b.append(("p", _model_text(replace(model, name="cfar", method="cfar"))))
    if model.card:
        section = card_section(Path(model.card), "Cross-validation")
        if section:
            b.append(("p", 'From the model card, section "Cross-validation":'))
            b.extend(section)
    b.append(("h", 2, "Daily counts"))
    b.append(("img", images.get("counts", "counts.png"), "daily counts"))
    b.append(
        (
            "p",
            "`count` is NA on unobserved days (no clear view), never 0. Partial days count only what "
            "was seen. Length classes: < 50 m, 50–150 m, > 150 m."
            + (
                f" `{OBSERVED_UNMASKED}` days were seen in full, but by a scene without a cloud mask "
                "(neither SCL nor the s2cloudless bands): clouds could not be screened out, so vessels "
                "under cloud are missed and the count may be low (dotted bars in the chart)."
                if (daily["status"] == OBSERVED_UNMASKED).any()
                else ""
            )
            + (
                " `dark_b02` is a haze index of the scene that counted: B02's dark level, which follows haze "
                "where the darkest pixels are clear water (Level-1C scenes read at least ~0.06 higher than "
                "Level-2A, more with haze or a low sun). On simulated L1C, more haze cost the truck model "
                "trucks and the ship model small ships, so compare days of similar haze and level."
                if show_haze
                else ""
            )
            + (
                " `sensor` says which satellite counted the day: S2 when it saw the zone clearly, else S1 "
                "(hollow bars in the chart); S1 and S2 have different detection limits."
                if "S1" in sensors
                else ""
            )
            + (" `dark_count`: ships with no AIS partner (NA where AIS was not available)." if ais else ""),
        )
    )
    cols = [
        "date",
        "zone",
        "class",
        "count",
        *(["count_uncertainty"] if trucks else []),
        "count_lt50m",
        "count_50_150m",
        "count_gt150m",
        *(["dark_count"] if ais else []),
        "observed_fraction",
        "cloud_fraction",
        "status",
        *(["sensor"] if "S1" in sensors else []),
        "scene",
    ]
    table = daily[[c for c in cols if c in DAILY_COLUMNS]].copy()
    for c in ("observed_fraction", "cloud_fraction"):
        table[c] = table[c].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
    if show_haze:  # the haze index of the scene that counted
        haze = scenes.drop_duplicates("scene").set_index("scene")["dark_b02"]
        observed = daily["status"].to_numpy() != "unobserved"
        table.insert(
            table.columns.get_loc("status"),
            "dark_b02",
            [
                f"{haze[sc]:.3f}" if ok and not pd.isna(haze.get(sc)) else ""
                for sc, ok in zip(table["scene"], observed, strict=True)
            ],
        )
    if "count_uncertainty" in table:
        table["count_uncertainty"] = table["count_uncertainty"].map(lambda v: "" if pd.isna(v) else f"±{v:g}")
    for c in ("count", "dark_count"):
        if c in table:
            table[c] = table[c].astype("object").where(table[c].notna(), "NA")
    b.append(("table", table))
    if "map" in images:
        b.append(("h", 2, "Map"))
        b.append(("img", images["map"], "detections over the imagery"))
        b.append(("p", images.get("map_caption", "")))
    if "map_html" in images:
        b.append(
            (
                "link",
                images["map_html"],
                "Interactive map",
                ": every day of the period on a slider, each seen day's image with the detections its count "
                "is made of (click one for its score, length and crop), the zones, and the unobserved days. "
                + MAP_OFFLINE_NOTE,
            )
        )
    if ais:
        b.extend(_ais_blocks(all_rows, scenes, ais))
    b.append(("h", 2, "Visits"))
    if visits:
        vt = pd.DataFrame(
            [
                {
                    "zone": v.zone,
                    "class": v.class_name,
                    "days seen": f"{v.days_observed}/{v.days_in_period}",
                    "max at once": _na(v.max_simultaneous),
                    "on": _na(v.max_simultaneous_date),
                    "distinct ≥": _na(v.distinct_min),
                    "vessel-days": _na(v.vessel_days),
                    "stays": _na(v.stays),
                }
                for v in visits
            ]
        )
        b.append(("table", vt))
        b.append(("p", "Assumptions behind these numbers:"))
        b.append(("ul", list(visits[0].assumptions)))
    else:
        b.append(("p", "No visits estimated."))
    b.append(("h", 2, "Claims"))
    if verdicts and "claims" in images:
        b.append(("img", images["claims"], "each claim beside what the imagery shows"))
        b.append(
            (
                "p",
                "Each claimed figure (grey, hatched) beside what the imagery shows over the claim's own "
                "period, zone, class and lengths: the lower bound on distinct vessels, the most seen at once "
                "and, when every day was seen in full, the ceiling. The title gives the verdict and its "
                "reason.",
            )
        )
    if verdicts:
        for v in verdicts:
            c = v.claim
            b.append(("h", 3, f"{c.id}: {v.verdict}"))
            src = f"{c.source}" + (f" ({c.url})" if c.url else "")
            b.append(("p", f"Claim: {c.text}. Source: {src}."))
            b.append(("ul", list(v.reasons)))
            if c.notes:
                b.append(("p", c.notes))
    else:
        b.append(("p", "No claims compared (pass `--claims FILE`)."))
    if baseline:
        b.extend(_baseline_blocks(baseline, images.get("baseline")))
    if crops is not None:
        b.extend(_crops_blocks(crops, all_rows, low_score or {}))
    if notice := copernicus_notice(scenes):
        b.append(("p", f"{notice}."))
    b.append(("h", 2, "Caveats"))
    caveats = list(CAVEATS)
    if "S1" in sensors:
        caveats += S1_CAVEATS
    if ais:
        caveats += [c.format(gates=ais_gates_text(ais.get("params") or {})) for c in AIS_CAVEATS]
    if l1c:
        classes = parameters.get("classes", ["ship"])
        if model.weights and "ship" in classes:
            caveats.append(l1c_caveat(model.method))
        if "truck" in classes:
            caveats.append(TRUCK_L1C_CAVEAT)
    if "truck" in parameters.get("classes", []):
        caveats.append(
            "Truck counts are a relative index of moving heavy vehicles, not a census: parked, queued or "
            "slow trucks show no band offset and are missed, and the count depends on speed, size and the "
            "deck's contrast. Compare days with each other, not with traffic statistics. Each day's truck "
            f"count also carries ± {COUNT_REL_ERROR['truck']:.0%} (`count_uncertainty`): the count error "
            "measured against a hand count of moving trucks on real roads (docs/trucks.md)."
        )
    n_unknown = int((scenes["status"] == "unknown").sum())
    if n_unknown:
        caveats.append(
            f"{n_unknown} scene(s) had no cloud mask (neither SCL nor the s2cloudless bands): their observed "
            "fraction is the share of valid pixels, and cloud over a zone would not lower it; the days "
            f"they count are `{OBSERVED_UNMASKED}`, not `observed`."
        )
    for cls, n in sorted(unobserved_class_counts(scenes).items()):
        caveats.append(
            f"{n} scene(s) could not be searched for {cls}s (a band its model needs is missing or empty; "
            f"`unobserved_classes` and `reason` in scenes.csv): they count the other classes, and their "
            f"days are `unobserved` for {cls}s unless another scene saw them."
        )
    b.append(("ul", caveats))
    failed = scenes[scenes["status"] == "failed"]
    if len(failed):
        b.append(("h", 2, "Scenes that failed"))
        b.append(("table", failed[["scene", "date", "reason"]]))
    b.append(
        (
            "p",
            "Files: detections.geojson, detections.parquet (GeoParquet), daily_counts.csv/.parquet, "
            "scenes.csv, coverage.csv, stays.csv, visits.json, claims.json, counts.png, map.png, run.json"
            + (", map.html and map_files/ (the interactive map)" if "map_html" in images else "")
            + (
                ", crops/ (one crop per counted detection, indexed in crops/crops.csv)"
                if crops is not None
                else ""
            )
            + (", claims.png" if verdicts and "claims" in images else "")
            + (", baseline.json, baseline.csv, baseline_daily_counts.csv, baseline.png" if baseline else "")
            + ".",
        )
    )
    return b


def copernicus_notice(scenes: pd.DataFrame) -> str:
    """ "Contains modified Copernicus Sentinel data <years>" for the scenes' years ("" without scenes)."""
    years = sorted({d.year for d in scenes["datetime"]}) if len(scenes) else []
    if not years:
        return ""
    span = str(years[0]) if len(years) == 1 else f"{years[0]}–{years[-1]}"
    return f"Contains modified Copernicus Sentinel data {span}"


#: Caveat of a run that counted trucks on Level-1C scenes (weights/trucks-s2.md, "Level-1C input").
TRUCK_L1C_CAVEAT = (
    "Some scenes are Level-1C (top of atmosphere): the truck model was trained on Level-2A. On simulated L1C "
    "of held-out cities it found 17-47 % fewer of the simulated trucks than on L2A (aerosol optical depth "
    "0.1-1.0), and 11-42 % fewer with the haze correction it applies where a window has open water. So a "
    "hazier day counts fewer trucks, and L1C days (all of 2018 outside Europe) are not comparable one to "
    "one with L2A days: compare L1C days with each other, and clear days with clear days (`dark_b02` in "
    "scenes.csv is a haze index per scene)."
)


def l1c_caveat(method: str) -> str:
    """The report's caveat for runs with Level-1C scenes; what was simulated applies to the segmentation
    models (``auto`` runs ``seg-ens``), each with its own numbers."""
    text = (
        "Some scenes are Level-1C (top of atmosphere, as all of 2018 outside Europe): the ship model was "
        "trained on Level-2A and never measured on real L1C (see the model card)."
    )
    if method in ("auto", "seg-ens"):  # weights/ships-s2-seg-ens.md, "Level-1C input (simulated)"
        text += (
            " On simulated L1C (aerosol optical depth 0.5) it lost 0.031 F1 in cross-validation; the haze "
            "correction it applies to L1C scenes (dark-object subtraction) won back 0.024 of it, at the cost "
            "of ships under 80 m (recall 0.42 on L2A, 0.36 on corrected L1C)."
        )
    if method == "seg-b4":  # weights/ships-s2-seg-b4.md, "Level-1C input (simulated)"
        text += (
            " On simulated L1C (aerosol optical depth 0.5) it lost 0.035 F1 in cross-validation; the haze "
            "correction it applies to L1C scenes (dark-object subtraction) won back 0.021 of it, at the cost "
            "of ships under 80 m (recall 0.58 on L2A, 0.39 on corrected L1C)."
        )
    if method == "seg":  # weights/ships-s2-seg.md, v7
        text += (
            " On simulated L1C (aerosol optical depth 0.5) it lost 0.04 F1 in cross-validation (single "
            "models of its recipe 0.01-0.03); the haze correction it applies to L1C scenes (dark-object "
            "subtraction) won back about 0.015 of it, at the cost of some ships under 80 m."
        )
    return text


def _baseline_blocks(comparisons: Sequence[PeriodComparison], chart: str | None) -> list[Block]:
    """The period against the baseline: the table, the chart, each row's reasons, and what it can and
    cannot show."""
    c0 = comparisons[0]
    out: list[Block] = [
        ("h", 2, "Period against baseline"),
        (
            "p",
            f"Did activity change between the baseline {c0.baseline_start} – {c0.baseline_end} and the "
            f"period {c0.period_start} – {c0.period_end}? Per zone and class: the mean daily count over the "
            "days each period was seen in full (unobserved days have no count and are left out, never taken "
            "as 0; partial days are floors and are left out too), their ratio (period / baseline) and "
            f"difference, each with a {c0.confidence:.0%} bootstrap interval ({c0.n_boot} resamples of the "
            "seen days, drawn within each period; seeded, so a rerun gives the same numbers). A ratio whose "
            "interval lies above 1 is read `higher`, below 1 `lower`, across 1 `no clear change`.",
        ),
        ("table", comparison_table(comparisons)),
    ]
    if chart:
        out.append(("img", chart, "ratio of mean daily counts with its interval"))
    out.append(
        ("ul", [f"{c.zone} · {c.class_name}: {c.reading}; " + "; ".join(c.reasons) for c in comparisons])
    )
    out.append(("p", "What this comparison can and cannot show:"))
    out.append(("ul", list(CAN_AND_CANNOT)))
    return out


def _crops_blocks(crops: pd.DataFrame, all_rows: pd.DataFrame, low_score: dict[str, float]) -> list[Block]:
    """The contact sheets: per seen day, one crop per counted detection (whole AOI)."""
    cut = "; ".join(f"`{d or '?'}` below {v:.3f}" for d, v in sorted(low_score.items()))
    out: list[Block] = [
        ("h", 2, "Every counted detection"),
        (
            "p",
            "Per seen day, one true-colour crop (48 × 48 px, 480 m at 10 m; radar backscatter in grey for a "
            "Sentinel-1 day) around each detection the day's whole-AOI count is made of, with its box, id, "
            "score and length (m). Low-score detections, the lowest quarter of each detector's scores in "
            f"this run ({cut or 'none'}), have orange dashed boxes: check them first. The crops are in "
            "crops/, listed with their boxes in crops/crops.csv (report.html draws the boxes, report.md "
            "lists the crops without them); the ids are those of detections.geojson.",
        ),
    ]
    seen = all_rows[all_rows["status"] != "unobserved"].sort_values(["date", "class"])
    for row in seen.to_dict("records"):
        day, cls = row["date"].isoformat(), row["class"]
        todays = crops[(crops["date"] == day) & (crops["class"] == cls)] if len(crops) else crops
        out.append(
            (
                "h",
                3,
                f"{day}: {len(todays)} {cls}(s), {row['status']}"
                + (f", {row['sensor']}" if row["sensor"] else "")
                + f" (scene `{row['scene']}`)",
            )
        )
        if len(todays):
            out.append(("crops", todays.to_dict("records")))
        else:
            out.append(("p", "Nothing counted on this day."))
    if seen.empty:
        out.append(("p", "No day was seen, so no detection was counted."))
    return out


def _ais_blocks(all_rows: pd.DataFrame, scenes: pd.DataFrame, ais: dict[str, Any]) -> list[Block]:
    """The AIS section: dark ships per assessed day (whole AOI) and the scenes AIS did not cover."""
    ships = all_rows[(all_rows["class"] == "ship") & all_rows["dark_count"].notna()]
    out: list[Block] = [("h", 2, "AIS and dark vessels")]
    if ships.empty:
        out.append(("p", "No counted scene had AIS fixes within the time window: nothing could be assessed."))
    else:
        n_dark, n_seen = int(ships["dark_count"].sum()), int(ships["count"].sum())
        out.append(
            (
                "p",
                f"On {len(ships)} day(s) with AIS around the image time, {n_dark} of {n_seen} ship "
                "detection(s) in the whole AOI had no AIS position within the gates (dark). Per day:",
            )
        )
        table = ships[["date", "sensor", "count", "dark_count", "scene"]].copy()
        out.append(("table", table))
    looked = scenes[scenes["status"].isin(("clear", "partial", "cloudy", "unknown"))]
    gaps = looked[looked["ais_fixes"].fillna(0) == 0]
    if len(gaps):
        out.append(
            (
                "p",
                f"{len(gaps)} scene(s) had no AIS fix within ±{ais['params']['time_window_s'] / 60:.0f} min: "
                + ", ".join(f"`{x}`" for x in gaps["scene"])
                + ". Their detections are neither dark nor matched.",
            )
        )
    return out


def card_section(card: Path, heading: str) -> list[Block]:
    """One ``## heading`` section of a Markdown model card as report blocks (pipe tables become tables).

    Sections still holding template placeholders (``__NAME__``) are left out rather than shown half-made.
    """
    try:
        lines = card.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    start = next((i for i, ln in enumerate(lines) if ln.strip().lower() == f"## {heading}".lower()), None)
    if start is None:
        return []
    body = []
    for ln in lines[start + 1 :]:
        if ln.startswith("## "):
            break
        body.append(ln)
    if re.search(r"__[A-Z_]+__", "\n".join(body)):
        return []
    blocks: list[Block] = []
    table: list[list[str]] = []
    para: list[str] = []
    items: list[str] = []  # a bullet list: "- " starts an item, indented lines continue it

    def flush() -> None:
        if para:
            blocks.append(("p", " ".join(para)))
            para.clear()
        if items:
            blocks.append(("ul", list(items)))
            items.clear()
        if table:
            rows = [r for r in table if not all(set(c) <= set("-: ") for c in r)]
            if rows:
                blocks.append(("table", pd.DataFrame(rows[1:], columns=rows[0])))
            table.clear()

    for ln in body:
        text = ln.strip()
        if text.startswith("|"):
            if para:
                flush()
            table.append([c.strip() for c in text.strip("|").split("|")])
        elif not text:
            flush()
        elif ln.startswith("- "):
            if para or table:
                flush()
            items.append(text[2:])
        elif items and ln.startswith(" "):
            items[-1] += " " + text
        else:
            if table or items:
                flush()
            para.append(text)
    flush()
    return blocks


def _model_text(m: ModelInfo) -> str:
    if m.method == "cfar":
        return (
            "Sentinel-1 ships: `cfar`, a constant-false-alarm-rate detector on calibrated VV backscatter "
            "(gamma clutter, SNAP windows 50/500/800 m, PFA 10^-6.5) with azimuth-ghost and land rejection; "
            "no trained weights. Measured on simulated speckle with planted vessels (docs/sar.md): ≥ 50 m "
            "vessels found at ≥ 7.5 dB over the clutter, 20 m boats at ≥ 10 dB, about 16 false vessels per "
            "1000 km² of open sea; no labelled real SAR scenes were available to measure it on."
        )
    if m.weights is None and m.sha256 is None:
        return (
            f"Detector `{m.method}` (classical, no trained weights): a reference and fallback; see the "
            "model card of the default ship model (weights/ships-s2-seg-ens.md) for its measured accuracy "
            "beside it."
        )
    if m.method == "auto":
        return (
            f"Ship detector `auto`: per scene, the best measured model for its bands (`{m.name}`: since "
            "session 25 on every band set the ensemble of the two hull-segmentation models, the U-Net on a "
            "pretrained EfficientNet-B4 encoder and the plain U-Net `ships-s2-seg` v7, their probabilities "
            "averaged; in session 24 the first alone, from v4 to session 23 the second on every scene "
            "with B08, and before that YOLO on scenes with B04 B03 B02 B08); each detection's `detector` "
            "names the model that ran. Accuracy by input, and against each member and YOLO: "
            "weights/ships-s2-seg-ens.md, weights/ships-s2-seg-b4.md and weights/ships-s2-seg.md."
        )
    kind = "Hull-segmentation (U-Net)" if m.method in ("seg", "seg-b4", "seg-ens") else "YOLO"
    members = [Path(w).stem for w in (m.weights or "").split(", ")] if m.weights and ", " in m.weights else []
    parts = [
        f"{kind} ensemble `{m.name}` of {' and '.join(f'`{x}`' for x in members)}, probabilities averaged"
        if members
        else f"{kind} weights `{m.name}`"
    ]
    if m.sha256:
        parts.append(f"{'spec digest' if members else 'sha256'} `{m.sha256[:16]}…`")
    if m.bands:
        any_of = " (any it reads: each scene gives those it has)" if kind.startswith("Hull") else ""
        parts.append(f"model bands {', '.join(m.bands)}{any_of}")
    text = ", ".join(parts) + "."
    pooled = (m.metrics.get("cv") or {}).get("pooled") if isinstance(m.metrics, dict) else None
    if isinstance(pooled, dict) and pooled.get("f1") is not None:
        folds = (m.metrics.get("cv") or {}).get("folds_completed")
        text += (
            " Measured accuracy, leave-cities-out cross-validation on held-out whole scenes"
            + (f" ({len(folds) if isinstance(folds, list | tuple) else folds} folds)" if folds else "")
            + ": "
            + "; ".join(f"{k} {v}" for k, v in _flat_metrics(pooled))
            + "."
        )
    elif flat := _flat_metrics(m.metrics):
        text += " Measured accuracy (from the weights' spec): " + "; ".join(f"{k} {v}" for k, v in flat) + "."
    else:
        text += " No accuracy figures were found in the weights' spec."
    if m.card:
        text += f" Model card: {m.card}."
    return text


#: Leaf names in a weights spec's ``metrics`` that are accuracy figures (the rest is provenance).
ACCURACY_KEYS = ("f1", "precision", "recall", "ap50", "map50", "count_error", "length_mae_m", "length_mae")


def _flat_metrics(metrics: dict[str, Any], prefix: str = "", limit: int = 12) -> list[tuple[str, str]]:
    """Accuracy figures from a nested metrics dict, as (dotted key, value) pairs."""
    out: list[tuple[str, str]] = []
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(_flat_metrics(v, f"{key}.", limit))
        elif isinstance(v, int | float) and not isinstance(v, bool) and str(k).lower() in ACCURACY_KEYS:
            out.append((key, f"{v:.3g}" if isinstance(v, float) else str(v)))
    return out[:limit]


def _na(v: Any) -> str:
    return "NA" if v is None else str(v)
