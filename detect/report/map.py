"""The run's interactive map (``map.html``): every day of the period on a slider, each seen day's image and
the detections its count is made of, the zones, and the days that were not seen.

Leaflet (vendored in ``static/leaflet``, BSD-2-Clause) is inlined in the page and the day images lie beside
it in ``map_files/``, so the page works offline from the run folder; only the optional OpenStreetMap base
layer needs internet. Images are warped to Web Mercator (Leaflet's projection) so they sit where the
detections are; the detections themselves are drawn from their lon/lat outlines.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from detect.counting.aggregate import ALL_ZONE, zone_areas
from imagery.aoi import Aoi, to_crs
from imagery.atomic import atomic_write_bytes, atomic_write_text
from imagery.types import Grid

LEAFLET_DIR = Path(__file__).resolve().parent / "static" / "leaflet"
LEAFLET_VERSION = "1.9.4"
WEB_MERCATOR = "EPSG:3857"
OVERLAY_JPEG_QUALITY = 85
OFFLINE_NOTE = (
    f"Works offline: Leaflet {LEAFLET_VERSION} is inside this page and the day images are in map_files/ "
    "beside it; only the optional OpenStreetMap base layer needs internet."
)
#: Day status → colour of its cell in the day strip (the counts chart's colours).
STATUS_COLOURS = {
    "observed": "#1f77b4",
    "observed-unmasked": "#6baed6",
    "partial": "#aec7e8",
    "unobserved": "#e6e6e6",
}


def write_overlay(rgb8: np.ndarray, grid: Grid, path: Path) -> list[list[float]]:
    """``rgb8`` (H, W, 3 on ``grid``) warped to Web Mercator and written as a JPEG; returns its Leaflet
    bounds [[south, west], [north, east]]."""
    from PIL import Image
    from pyproj import Transformer
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    left, bottom, right, top = grid.bounds
    transform, width, height = calculate_default_transform(
        grid.crs, WEB_MERCATOR, grid.width, grid.height, left=left, bottom=bottom, right=right, top=top
    )
    out = np.zeros((3, height, width), np.uint8)
    reproject(
        np.moveaxis(rgb8, -1, 0),
        out,
        src_transform=grid.transform,
        src_crs=grid.crs,
        dst_transform=transform,
        dst_crs=WEB_MERCATOR,
        resampling=Resampling.nearest,
    )
    buf = io.BytesIO()
    Image.fromarray(np.moveaxis(out, 0, -1)).save(buf, "JPEG", quality=OVERLAY_JPEG_QUALITY)
    atomic_write_bytes(path, buf.getvalue())
    to_lonlat = Transformer.from_crs(WEB_MERCATOR, "EPSG:4326", always_xy=True)
    west, north = to_lonlat.transform(transform.c, transform.f)
    east, south = to_lonlat.transform(transform.c + width * transform.a, transform.f + height * transform.e)
    return [[south, west], [north, east]]


def map_days(
    daily: pd.DataFrame,
    counted: pd.DataFrame,
    classes: Sequence[str],
    overlays: Mapping[str, str],
    crops: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Every day of the period for the page: status and count per class (whole AOI), the scene whose image
    is shown, and the counted detections as GeoJSON features (with their crop file when there is one)."""
    whole = daily[daily["zone"] == ALL_ZONE]
    crop_files = (
        dict(zip(crops["id"], crops["file"], strict=True)) if crops is not None and len(crops) else {}
    )
    low = dict(zip(crops["id"], crops["low_score"], strict=True)) if crops is not None and len(crops) else {}
    days = []
    for day, rows in whole.groupby("date", sort=True):
        rows = rows.set_index("class")
        per_class = {
            cls: {
                "status": rows.at[cls, "status"],
                "count": None if pd.isna(rows.at[cls, "count"]) else int(rows.at[cls, "count"]),
                "scene": rows.at[cls, "scene"] or None,
                "sensor": rows.at[cls, "sensor"] or None,
            }
            for cls in classes
            if cls in rows.index
        }
        first = per_class.get(classes[0], {"status": "unobserved", "scene": None})
        shown = next((c for c in per_class.values() if c["status"] != "unobserved" and c["scene"]), None)
        todays = counted[counted["date"] == day] if len(counted) else counted
        features = []
        for rec in todays.to_dict("records"):
            props = {
                "id": rec["id"],
                "class": rec["class"],
                "score": round(float(rec["score"]), 3),
                "length_m": round(float(rec["length_m"]), 1),
                "zones": rec["zones"],
                "scene": rec["scene"],
                "detector": rec.get("detector"),
                "low_score": bool(low.get(rec["id"], False)),
                "crop": crop_files.get(rec["id"]) or None,
            }
            if rec.get("dark") is not None and not pd.isna(rec.get("dark")):
                props["dark"] = bool(rec["dark"])
            features.append(
                {
                    "type": "Feature",
                    "geometry": shapely.geometry.mapping(rec["geometry"]),
                    "properties": props,
                }
            )
        days.append(
            {
                "date": day.isoformat() if isinstance(day, date) else str(day),
                "status": first["status"],
                "classes": per_class,
                "image": overlays.get(shown["scene"]) if shown else None,
                "image_scene": shown["scene"] if shown else None,
                "image_sensor": shown["sensor"] if shown else None,
                "features": features,
            }
        )
    return days


def zones_geojson(aoi: Aoi) -> dict[str, Any]:
    """The AOI's zones (line zones buffered, as counted) as a lon/lat FeatureCollection, the AOI last."""
    crs = aoi.utm_crs
    areas = zone_areas(aoi, crs)
    order = sorted(areas, key=lambda n: n == ALL_ZONE)
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(to_crs(areas[n], "EPSG:4326", src_crs=crs)),
                "properties": {"name": n},
            }
            for n in order
        ],
    }


def write_map_html(
    path: Path,
    *,
    title: str,
    aoi: Aoi,
    days: Sequence[dict[str, Any]],
    image_bounds: list[list[float]] | None,
    start_day: str | None = None,
    attribution: str = "",
) -> Path:
    """The standalone map page (see the module's docstring); ``start_day`` is the day shown first."""
    # the outline and the zones (a zone may reach beyond it: the run read all of it)
    west, south, east, north = shapely.union_all([aoi.geometry, *(z.geometry for z in aoi.zones)]).bounds
    dates = [d["date"] for d in days]
    data = {
        "title": title,
        "days": list(days),
        "zones": zones_geojson(aoi),
        "bounds": [[south, west], [north, east]],
        "image_bounds": image_bounds,
        "start": dates.index(start_day) if start_day in dates else 0,
        "colours": STATUS_COLOURS,
    }
    payload = json.dumps(data, default=_json_default, allow_nan=False).replace("</", "<\\/")
    page = _TEMPLATE.format(
        title=html.escape(title),
        leaflet_css=_leaflet_css(),
        leaflet_js=_leaflet_js(),
        data=payload,
        note=html.escape(OFFLINE_NOTE),
        attribution=json.dumps(attribution).replace("</", "<\\/"),
        n_max=max(len(days) - 1, 0),
        legend="".join(
            f'<span class="key" style="background:{c}"></span>{html.escape(s)} '
            for s, c in STATUS_COLOURS.items()
        ),
    )
    return atomic_write_text(path, page)


@cache
def _leaflet_js() -> str:
    return (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8").replace("</script", "<\\/script")


@cache
def _leaflet_css() -> str:
    """Leaflet's stylesheet with the images it names inlined as data: URIs (no file beside the page)."""
    css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")
    for img in sorted((LEAFLET_DIR / "images").glob("*.png")):
        uri = "data:image/png;base64," + base64.b64encode(img.read_bytes()).decode()
        css = css.replace(f"url(images/{img.name})", f"url({uri})")
    return css


def _json_default(v: Any) -> Any:
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, np.integer | np.bool_):
        return v.item()
    if isinstance(v, np.floating):
        return None if math.isnan(v) else float(v)
    raise TypeError(f"not JSON: {type(v).__name__}")


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{leaflet_css}</style>
<style>
html,body{{height:100%;margin:0;font-family:sans-serif;font-size:14px}}
body{{display:flex;flex-direction:column}}
#bar{{padding:6px 10px;border-bottom:1px solid #ccc;background:#fafafa}}
#bar h1{{font-size:16px;margin:0 0 4px 0}}
#controls{{display:flex;align-items:center;gap:6px;flex-wrap:wrap}}
#day{{flex:1;min-width:12em}}
#label{{font-weight:bold}}
#strip{{display:flex;gap:1px;margin-top:4px}}
#strip div{{flex:1;height:14px;cursor:pointer;font-size:10px;line-height:14px;text-align:center;
  color:#636363}}
#strip div.current{{outline:2px solid #d62728;outline-offset:-2px}}
.key{{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px;border:1px solid #999}}
.note{{color:#555;font-size:12px;margin-top:3px}}
#map{{flex:1;min-height:300px}}
#unseen{{position:absolute;top:45%;left:0;right:0;text-align:center;z-index:1000;pointer-events:none;
  font-size:18px;color:#333}}
#unseen span{{background:rgba(255,255,255,.85);padding:6px 12px;border:1px solid #999}}
.popup img{{width:144px;height:144px;image-rendering:pixelated;display:block;margin-top:4px}}
</style></head>
<body>
<div id="bar">
<h1>{title}</h1>
<div id="controls">
<button id="prev" title="previous day (←)">&#9664;</button>
<input type="range" id="day" min="0" max="{n_max}" value="0" aria-label="day">
<button id="next" title="next day (→)">&#9654;</button>
<span id="label"></span>
</div>
<div id="strip"></div>
<div class="note">Day status (whole AOI): {legend} &#8212; an unobserved day has no count, never 0.
Red outlines: counted detections (orange dashed: low score); yellow: zones. {note}</div>
</div>
<div id="map" style="position:relative"><div id="unseen" hidden><span></span></div></div>
<script>{leaflet_js}</script>
<script id="data" type="application/json">{data}</script>
<script>
(function () {{
  "use strict";
  var D = JSON.parse(document.getElementById("data").textContent);
  var esc = function (s) {{
    return String(s).replace(/[&<>"']/g, function (c) {{
      return {{"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}}[c];
    }});
  }};
  var map = L.map("map", {{zoomSnap: 0.25}});
  map.attributionControl.addAttribution({attribution});
  map.fitBounds(D.bounds);
  var none = L.layerGroup().addTo(map);
  var osm = L.tileLayer("https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png",
    {{maxZoom: 19, attribution: "&copy; OpenStreetMap contributors"}});
  var image = L.layerGroup().addTo(map);
  var dets = L.layerGroup().addTo(map);
  var zones = L.geoJSON(D.zones, {{
    style: function (f) {{
      var all = f.properties.name === "all";
      return {{color: "#ffd400", weight: all ? 1.5 : 2, fill: false, dashArray: all ? "6 4" : null}};
    }},
    onEachFeature: function (f, layer) {{ layer.bindTooltip("zone: " + esc(f.properties.name)); }}
  }}).addTo(map);
  L.control.layers(
    {{"No basemap (offline)": none, "OpenStreetMap (needs internet)": osm}},
    {{"Image of the day": image, "Counted detections": dets, "Zones": zones}},
    {{collapsed: false}}
  ).addTo(map);
  L.control.scale({{imperial: false}}).addTo(map);

  var slider = document.getElementById("day");
  var label = document.getElementById("label");
  var unseen = document.getElementById("unseen");
  var strip = document.getElementById("strip");
  D.days.forEach(function (d, i) {{
    var cell = document.createElement("div");
    cell.style.background = D.colours[d.status] || "#ccc";
    cell.textContent = d.status === "unobserved" ? "\\u2715" : "";
    cell.title = d.date + ": " + d.status;
    cell.addEventListener("click", function () {{ show(i); }});
    strip.appendChild(cell);
  }});

  function popup(p) {{
    var rows = [["id", p.id], ["class", p["class"]], ["score", p.score + (p.low_score ? " (low)" : "")],
      ["length", p.length_m + " m"], ["zones", p.zones], ["scene", p.scene], ["detector", p.detector]];
    if (p.dark !== undefined) rows.push(["dark (no AIS)", p.dark ? "yes" : "no"]);
    var h = '<div class="popup"><table>' + rows.map(function (r) {{
      return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>";
    }}).join("") + "</table>";
    if (p.crop) h += '<img src="' + esc(p.crop) + '" alt="crop ' + esc(p.id) + '">';
    return h + "</div>";
  }}

  function show(i) {{
    i = Math.max(0, Math.min(D.days.length - 1, i));
    var d = D.days[i];
    slider.value = i;
    image.clearLayers();
    dets.clearLayers();
    Array.prototype.forEach.call(strip.children, function (c, k) {{
      c.className = k === i ? "current" : "";
    }});
    var parts = Object.keys(d.classes).map(function (c) {{
      var x = d.classes[c];
      return x.count === null ? c + "s: no count" : x.count + " " + c + (x.count === 1 ? "" : "s") +
        (x.status === "partial" ? " (a floor)" : "");
    }});
    label.textContent = d.date + " \\u2014 " + d.status + " \\u2014 " + parts.join(", ") +
      (d.image_scene ? " (" + (d.image_sensor || "") + " " + d.image_scene + ")" : "");
    if (d.status === "unobserved") {{
      unseen.hidden = false;
      unseen.firstChild.textContent = d.date + ": unobserved \\u2014 no clear view, no count (not 0)";
    }} else {{
      unseen.hidden = true;
    }}
    if (d.image && D.image_bounds) {{
      L.imageOverlay(d.image, D.image_bounds, {{alt: "image of " + d.date}}).addTo(image);
    }}
    L.geoJSON({{type: "FeatureCollection", features: d.features}}, {{
      style: function (f) {{
        var low = f.properties.low_score;
        return {{color: low ? "#ff9900" : (f.properties["class"] === "truck" ? "#17becf" : "#ff2d2d"),
          weight: 1.5, dashArray: low ? "3 2" : null, fillOpacity: 0.05}};
      }},
      onEachFeature: function (f, layer) {{ layer.bindPopup(popup(f.properties)); }}
    }}).addTo(dets);
  }}

  slider.addEventListener("input", function () {{ show(+slider.value); }});
  document.getElementById("prev").addEventListener("click", function () {{ show(+slider.value - 1); }});
  document.getElementById("next").addEventListener("click", function () {{ show(+slider.value + 1); }});
  document.addEventListener("keydown", function (e) {{
    if (e.target === slider) return;  // the slider steps itself
    if (e.key === "ArrowLeft") show(+slider.value - 1);
    if (e.key === "ArrowRight") show(+slider.value + 1);
  }});
  show(D.start);
}})();
</script>
</body></html>
"""
