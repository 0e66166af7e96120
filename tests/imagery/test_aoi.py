"""The AOI registry: bundled GeoJSON AOIs, user GeoJSON files and bboxes, and the errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyproj import Geod
from shapely.geometry import LineString, Point, box

from imagery.aoi import (
    AOI_KINDS,
    ZONE_KINDS,
    Aoi,
    aoi_details,
    aoi_from_bbox,
    aoi_from_geojson,
    aoi_names,
    aoi_to_geojson,
    aois,
    export_aoi,
    get_aoi,
    to_crs,
    utm_crs_for,
)
from imagery.errors import AoiError

GEOD = Geod(ellps="WGS84")

# name -> (kind, box it must lie in (west, south, east, north), zone kinds it must have, UTM CRS)
EXPECTED = {
    "longkou-port": ("port", (120.20, 37.60, 120.36, 37.72), {"berth", "port"}, "EPSG:32651"),
    "longkou-anchorage": ("anchorage", (119.95, 37.50, 120.25, 37.75), {"anchorage"}, "EPSG:32651"),
    "dandong-bridges": ("bridge", (124.30, 40.00, 124.45, 40.15), {"bridge_deck", "water"}, "EPSG:32651"),
    "nampo-port": ("port", (125.30, 38.65, 125.50, 38.80), {"berth", "anchorage"}, "EPSG:32651"),
    "chongjin-port": ("port", (129.74, 41.70, 129.90, 41.82), {"berth", "anchorage"}, "EPSG:32652"),
}


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _feature(geom, **props) -> dict:
    from shapely.geometry import mapping

    return {"type": "Feature", "properties": props, "geometry": mapping(geom)}


def _distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def test_registry_holds_the_five_bundled_aois():
    assert set(aois()) == set(EXPECTED)
    assert aoi_names() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bundled_aoi_has_kind_zones_provenance_and_lies_in_its_box(name):
    kind, (w, s, e, n), zone_kinds, utm = EXPECTED[name]
    aoi = get_aoi(name)
    assert aoi.name == name and aoi.kind == kind and aoi.kind in AOI_KINDS
    assert box(w, s, e, n).buffer(1e-9).contains(aoi.geometry), aoi.bbox
    assert {z.kind for z in aoi.zones} == zone_kinds
    assert all(z.kind in ZONE_KINDS for z in aoi.zones)
    assert aoi.description and aoi.source and aoi.certainty
    outline = to_crs(aoi.geometry, utm).buffer(1.0)  # 1 m for coordinate rounding
    for z in aoi.zones:
        assert z.source and z.certainty and z.description, z.name
        area = z.area_geometry(utm)
        assert area.area > 0
        assert outline.contains(area), f"zone {z.name} leaves the {name} outline"
    assert aoi.utm_crs == utm


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_grid_at_10m_covers_the_aoi_with_a_sane_size(name):
    aoi = get_aoi(name)
    grid = aoi.grid(10.0)
    assert grid.crs == EXPECTED[name][3] and grid.res_m == 10.0
    assert 300 <= grid.width <= 2500 and 300 <= grid.height <= 2500
    left, bottom, right, top = grid.bounds
    assert box(left, bottom, right, top).buffer(1e-6).contains(to_crs(aoi.geometry, grid.crs))
    # the grid is the AOI's bounding box, so its area is at least the AOI's and not absurdly more
    assert aoi.area_km2 <= grid.area_km2 <= 1.5 * aoi.area_km2


def test_dandong_decks_are_buffered_lines_of_the_published_length_and_a_sensible_width():
    aoi = get_aoi("dandong-bridges")
    decks = {z.name: z for z in aoi.zones if z.kind == "bridge_deck"}
    published_length = {"friendship-bridge-deck": 940.8, "new-yalu-bridge-deck": 3026.0}
    published_centre = {
        "friendship-bridge-deck": (124.3930, 40.1145),
        "new-yalu-bridge-deck": (124.36944, 40.03556),
    }
    assert set(decks) == set(published_length)
    for name, deck in decks.items():
        assert isinstance(deck.geometry, LineString)
        assert 10 <= deck.buffer_m <= 50
        line = to_crs(deck.geometry, aoi.utm_crs)
        assert line.length == pytest.approx(published_length[name], rel=0.01)
        area = deck.area_geometry(aoi.utm_crs)
        width_m = area.area / line.length  # ends add a little; width ≈ 2 * buffer
        assert 2 * deck.buffer_m <= width_m <= 2 * deck.buffer_m * 1.1
        assert 20 <= width_m <= 100
        mid = deck.geometry.interpolate(0.5, normalized=True)
        assert _distance_m(mid.x, mid.y, *published_centre[name]) < 50


def test_bridges_are_about_nine_km_apart_and_the_river_zone_joins_them():
    aoi = get_aoi("dandong-bridges")
    fr, ny = aoi.zone("friendship-bridge-deck"), aoi.zone("new-yalu-bridge-deck")
    river = aoi.zone("yalu-river")
    a, b = fr.geometry.centroid, ny.geometry.centroid
    assert 8000 < _distance_m(a.x, a.y, b.x, b.y) < 10000
    assert river.geometry.intersects(fr.geometry) and river.geometry.intersects(ny.geometry)


def test_longkou_anchorage_lies_offshore_west_of_the_berths():
    berths = get_aoi("longkou-port").zone("coal-berths").geometry
    anchorage = get_aoi("longkou-anchorage").zone("waiting-area").geometry
    assert anchorage.bounds[2] <= berths.bounds[0]  # entirely west: Laizhou Bay is the sea side
    c1, c2 = berths.centroid, anchorage.centroid
    assert 8000 < _distance_m(c1.x, c1.y, c2.x, c2.y) < 20000  # "about 10 km out"


@pytest.mark.parametrize(
    ("lon", "lat", "crs"),
    [(120.28, 37.66, "EPSG:32651"), (124.39, 40.11, "EPSG:32651"), (125.39, 38.73, "EPSG:32651"),
     (129.82, 41.77, "EPSG:32652"), (-70.0, -33.0, "EPSG:32719")],
)
def test_utm_crs_for_known_places(lon, lat, crs):
    assert utm_crs_for(lon, lat) == crs


def test_get_aoi_accepts_names_case_insensitively_and_aoi_objects():
    aoi = get_aoi(" Longkou-Port ")
    assert aoi.name == "longkou-port"
    assert get_aoi(aoi) is aoi


def test_user_geojson_with_outline_polygon_and_line_zone(tmp_path):
    outline = box(124.38, 40.10, 124.41, 40.13)
    deck = LineString([(124.389, 40.1175), (124.397, 40.1115)])
    berth = box(124.39, 40.11, 124.40, 40.12)
    doc = {
        "type": "FeatureCollection",
        "features": [
            _feature(outline, name="my-bridge", kind="bridge", source="my survey", certainty="±10 m"),
            _feature(deck, zone="deck", kind="bridge_deck", buffer_m=20),
            _feature(berth, zone="quay", kind="berth", source=["a", "b"]),
            _feature(Point(124.39, 40.12), label="a note, not part of the AOI"),
        ],
    }
    aoi = get_aoi(str(_write(tmp_path / "mine.geojson", doc)))
    assert (aoi.name, aoi.kind, aoi.source, aoi.certainty) == ("my-bridge", "bridge", "my survey", "±10 m")
    assert aoi.geometry.equals(outline)
    zones = [(z.name, z.kind, z.buffer_m) for z in aoi.zones]
    assert zones == [("deck", "bridge_deck", 20.0), ("quay", "berth", 0.0)]
    assert aoi.zone("quay").source == "a; b"
    assert aoi.utm_crs == "EPSG:32651"


def test_user_geojson_bare_polygon_is_named_after_the_file(tmp_path):
    triangle = {"type": "Polygon", "coordinates": [[[1, 1], [2, 1], [2, 2], [1, 1]]]}
    path = _write(tmp_path / "harbour.json", triangle)
    aoi = get_aoi(path)
    assert (aoi.name, aoi.kind, aoi.zones) == ("harbour", "custom", ())


def test_user_geojson_of_zones_only_takes_their_union_as_outline(tmp_path):
    deck = LineString([(124.389, 40.1175), (124.397, 40.1115)])
    quay = box(124.40, 40.12, 124.41, 40.13)
    doc = {"type": "FeatureCollection", "features": [
        _feature(deck, zone="deck", kind="bridge_deck", buffer_m=15),
        _feature(quay, zone="quay", kind="berth"),
    ]}
    aoi = aoi_from_geojson(doc, name="zones-only")
    assert aoi.geometry.geom_type == "MultiPolygon"
    utm = aoi.utm_crs
    outline = to_crs(aoi.geometry, utm).buffer(0.5)
    assert all(outline.contains(z.area_geometry(utm)) for z in aoi.zones)


def test_multipolygon_features_are_unioned(tmp_path):
    doc = {"type": "FeatureCollection", "features": [
        _feature(box(0, 0, 0.1, 0.1)), _feature(box(0.1, 0, 0.2, 0.1)), _feature(box(0.5, 0.5, 0.6, 0.6))]}
    aoi = aoi_from_geojson(_write(tmp_path / "parts.geojson", doc))
    assert aoi.geometry.area == pytest.approx(0.03)


def test_bbox_string_and_sequence_give_the_same_aoi():
    a = get_aoi("120.2, 37.6, 120.36, 37.72")
    b = aoi_from_bbox((120.2, 37.6, 120.36, 37.72))
    assert a.geometry.equals(b.geometry) and a.name == b.name == "bbox:120.2,37.6,120.36,37.72"
    assert a.bbox == pytest.approx((120.2, 37.6, 120.36, 37.72))
    assert a.area_km2 == pytest.approx(get_aoi("longkou-port").area_km2, rel=1e-6)
    assert get_aoi("-71,-34,-70.5,-33.5").utm_crs == "EPSG:32719"


def test_export_round_trips_through_geojson(tmp_path):
    out = export_aoi("dandong-bridges", tmp_path / "sub" / "copy.geojson")
    assert out.exists() and [p.name for p in out.parent.iterdir()] == ["copy.geojson"]  # no temp files left
    back = get_aoi(out)
    orig = get_aoi("dandong-bridges")
    def head(a):
        return (a.name, a.kind, a.source, a.certainty, a.description)

    assert head(back) == head(orig)
    assert [(z.name, z.kind, z.buffer_m, z.source) for z in back.zones] == [
        (z.name, z.kind, z.buffer_m, z.source) for z in orig.zones]
    assert all(b.geometry.equals(o.geometry) for b, o in zip(back.zones, orig.zones, strict=True))
    assert aoi_to_geojson(back) == aoi_to_geojson(orig)


def test_details_report_zone_areas_buffers_and_grid():
    info = aoi_details(get_aoi("dandong-bridges"))
    assert info["utm_crs"] == "EPSG:32651" and info["grid"]["res_m"] == 10.0
    deck = next(z for z in info["zones"] if z["name"] == "friendship-bridge-deck")
    assert deck["geometry_type"] == "LineString" and deck["buffer_m"] == 25.0
    assert deck["length_m"] == pytest.approx(940.8, rel=0.01)
    assert deck["area_km2"] == pytest.approx(0.941 * 0.05, rel=0.1)
    json.dumps(info)  # plain JSON, no shapely objects


# --- bad input: each gives one AoiError line that says what is wrong


def _bad_file(tmp_path: Path, doc) -> str:
    path = tmp_path / "bad.geojson"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


UTM_SQUARE = [[[600000, 4170000], [610000, 4170000], [610000, 4180000], [600000, 4170000]]]
BOWTIE = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]


NAN_POLYGON = '{"type": "Polygon", "coordinates": [[[1, 1], [NaN, 1], [2, 2], [1, 1]]]}'
PAST_180 = [[[180, 1], [180.4, 1], [180, 2], [180, 1]]]


@pytest.mark.parametrize(
    ("make_spec", "expected"),
    [
        (lambda tmp: "atlantis-port", ["unknown AOI 'atlantis-port'", "longkou-port", "dandong-bridges"]),
        (lambda tmp: "120.3,37.6,120.2,37.7", ["west (120.3) must be less than east (120.2)"]),
        (lambda tmp: "120.2,37.7,120.3,37.6", ["south (37.7) must be less than north (37.6)"]),
        (lambda tmp: "190,37.6,200,37.7", ["longitudes must lie in -180..180"]),
        (lambda tmp: "120,-95,121,37", ["latitudes must lie in -90..90"]),
        (lambda tmp: "120.2,37.6,120.3", ["must be four numbers"]),
        (lambda tmp: str(tmp / "missing.geojson"), ["no such GeoJSON file"]),
        (lambda tmp: str(tmp), ["is a folder"]),
        (lambda tmp: _bad_file(tmp, '{"type": "Polygon", "coordinates": [[[1, 1], [2, 1]'),
         ["not valid JSON"]),
        (lambda tmp: _bad_file(tmp, {"type": "Polygon", "coordinates": UTM_SQUARE}),
         ["looks projected", "RFC 7946", "600000"]),
        (lambda tmp: _bad_file(tmp, {"type": "FeatureCollection",
                                     "crs": {"type": "name", "properties": {"name": "EPSG:32651"}},
                                     "features": [_feature(box(1, 1, 2, 2))]}),
         ["declares CRS EPSG:32651", "RFC 7946"]),
        (lambda tmp: _bad_file(tmp, {"type": "Polygon", "coordinates": []}), ["polygon is empty"]),
        (lambda tmp: _bad_file(tmp, {"type": "FeatureCollection", "features": [_feature(Point(1, 2))]}),
         ["no Polygon or MultiPolygon"]),
        (lambda tmp: _bad_file(tmp, {"type": "FeatureCollection", "features": []}),
         ["no Polygon or MultiPolygon"]),
        (lambda tmp: _bad_file(tmp, {"type": "FeatureCollection", "features": [
            _feature(box(0, 0, 1, 1)),
            _feature(LineString([(0.1, 0.1), (0.5, 0.5)]), zone="deck", kind="bridge_deck")]}),
         ["zone 'deck' is a LineString", "buffer_m"]),
        (lambda tmp: _bad_file(tmp, {"type": "FeatureCollection", "features": [
            _feature(box(0, 0, 1, 1)), _feature(box(0.1, 0.1, 0.2, 0.2), zone="q", kind="pier")]}),
         ["zone kind 'pier' is not one of", "berth"]),
        (lambda tmp: _bad_file(tmp, {"type": "FeatureCollection", "features": [
            _feature(box(0, 0, 1, 1)), _feature(box(3, 3, 4, 4), zone="far", kind="berth")]}),
         ["zone 'far' lies entirely outside"]),
        (lambda tmp: _bad_file(tmp, {"type": "FeatureCollection", "features": [
            _feature(box(0, 0, 1, 1), kind="harbour")]}), ["AOI kind 'harbour' is not one of"]),
        (lambda tmp: _bad_file(tmp, {"type": "Polygon", "coordinates": BOWTIE}),
         ["invalid geometry", "Self-intersection"]),
        (lambda tmp: _bad_file(tmp, {"type": "Topology"}), ["unsupported GeoJSON type 'Topology'"]),
        (lambda tmp: _bad_file(tmp, NAN_POLYGON), ["is not a number"]),
        (lambda tmp: _bad_file(tmp, {"type": "Polygon", "coordinates": PAST_180}), ["outside lon -180..180"]),
    ],
    ids=["unknown-name", "bbox-west-east", "bbox-south-north", "bbox-lon-range", "bbox-lat-range",
         "bbox-3-numbers", "missing-file", "folder", "bad-json", "projected-coords", "projected-crs-member",
         "empty-polygon", "only-point", "no-features", "line-without-buffer", "bad-zone-kind", "zone-outside",
         "bad-aoi-kind", "self-intersection", "unsupported-type", "nan-coordinate", "just-past-180"],
)
def test_bad_input_gives_one_line_aoi_error(tmp_path, make_spec, expected):
    with pytest.raises(AoiError) as err:
        get_aoi(make_spec(tmp_path))
    message = str(err.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    "make_spec",
    [
        lambda tmp: "-180,-90,180,90",
        lambda tmp: "100,10,102.5,10.5",
        lambda tmp: "100,10,100.5,12.5",
        # Fiji's ports either side of the antimeridian, as two polygons: their box spans the world
        lambda tmp: _bad_file(tmp, {"type": "FeatureCollection", "features": [
            _feature(box(179.8, -17.0, 180.0, -16.8)), _feature(box(-180.0, -17.0, -179.8, -16.8))]}),
    ],
    ids=["whole-world", "wide", "tall", "across-antimeridian"],
)  # fmt: skip
def test_an_aoi_wider_than_a_port_or_bridge_is_refused(tmp_path, make_spec):
    with pytest.raises(AoiError, match="at most 2 degrees either way") as err:
        get_aoi(make_spec(tmp_path))
    assert "\n" not in str(err.value)
    assert aoi_from_bbox((100, 10, 102, 12)).bbox == (100, 10, 102, 12)  # up to the limit is an AOI


def test_aoi_error_is_also_a_value_error_and_key_error():
    with pytest.raises(ValueError):
        get_aoi("atlantis-port")
    with pytest.raises(KeyError):
        get_aoi("atlantis-port")


def test_unreadable_bytes_are_reported(tmp_path):
    path = tmp_path / "latin1.geojson"
    path.write_bytes(b'{"type": "Polygon", "name": "\xe9\xff"}')
    with pytest.raises(AoiError, match="cannot read GeoJSON file"):
        aoi_from_geojson(path)


def test_missing_zone_name_lists_the_zones():
    with pytest.raises(AoiError, match="zones: coal-berths, inner-harbour"):
        get_aoi("longkou-port").zone("pier-9")


def test_aoi_record_still_rejects_empty_and_degree_less_geometry():
    with pytest.raises(AoiError, match="empty geometry"):
        Aoi(name="x", kind="custom", geometry=box(0, 0, 1, 1).intersection(box(5, 5, 6, 6)))
    with pytest.raises(AoiError, match="not lon/lat degrees"):
        Aoi(name="x", kind="custom", geometry=box(600000, 4170000, 610000, 4180000))


@pytest.mark.parametrize(
    ("names", "says"),
    [(["z", "z"], "two zones are named 'z'"), (["all"], "reserved for the whole AOI"), ([" "], "empty name")],
)
def test_zone_names_that_would_merge_or_vanish_in_the_counts_are_refused(names, says):
    """Counts are keyed by zone name: a second zone of one name replaced the first's area (its ships
    counted 0), and a zone named 'all' was silently replaced by the whole AOI."""
    outline = box(8.87, 44.38, 8.93, 44.43)
    zones = [_feature(box(8.90 + i / 100, 44.40, 8.905 + i / 100, 44.41), zone=n, kind="berth")
             for i, n in enumerate(names)]
    doc = {"type": "FeatureCollection", "features": [_feature(outline), *zones]}
    with pytest.raises(AoiError, match=says):
        aoi_from_geojson(doc, name="zones")


def test_a_bbox_aoi_is_named_with_every_decimal_it_was_given():
    """Names kept 6 significant digits: 120.2001 became 120.2 (a name with west == east), two boxes
    0.2 m apart shared a name (and a batch dataset partition), and a claim naming the bbox as typed never
    matched."""
    a = get_aoi("8.877612,44.3879,8.9239,44.4211")
    b = get_aoi("8.877614,44.3879,8.9239,44.4211")
    assert a.name == "bbox:8.877612,44.3879,8.9239,44.4211" and a.name != b.name
    assert get_aoi("120.2,37.6,120.2001,37.6001").name == "bbox:120.2,37.6,120.2001,37.6001"
