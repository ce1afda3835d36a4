"""Grids in the store, the same on PostgreSQL/PostGIS and SQLite: import all-or-nothing, idempotent re-import,
versioned boundaries read back as they were valid, create / update / retire."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from shapely.geometry import MultiPolygon, box
from sqlalchemy import Engine, text

from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH
from store import grids
from store.engine import open_engine

T0 = datetime(2024, 5, 30, 17, 0, tzinfo=UTC)


def _doc(path: Any) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def engine(store_url: str) -> Any:
    engine = open_engine(store_url, pool_size=2)
    yield engine
    engine.dispose()


def _import_sf(engine: Engine, now: datetime = T0) -> tuple[grids.ImportReport, grids.ImportReport]:
    police = grids.import_grids(
        engine, _doc(DISTRICTS_PATH), level="police", name_property="district", now=now
    )
    community = grids.import_grids(
        engine, _doc(NEIGHBORHOODS_PATH), level="community", name_property="neighborhood", now=now
    )
    return police, community


def test_the_sf_levels_import_with_parents_by_area_and_reimport_changes_nothing(engine: Engine) -> None:
    police, community = _import_sf(engine)
    assert police.count("created") == 10 and community.count("created") == 41
    assert police.repairs == [] and community.repairs == []
    assert [s.name for s in community.to_check()] == [
        "Presidio",
        "Financial District/South Beach",
        "Inner Sunset",
        "West of Twin Peaks",
        "Castro/Upper Market",
        "Lincoln Park",
        "Noe Valley",
        "Tenderloin",
        "Russian Hill",
    ]
    mission = grids.get_grid(engine, "community-mission")
    assert mission is not None and mission.parent_id == "police-mission" and mission.version == 1
    assert {g.id for g in grids.list_grids(engine, parent="police-mission")} >= {
        "community-mission",
        "community-noe-valley",
    }
    assert len(grids.list_grids(engine, level="police")) == 10

    again_p, again_c = _import_sf(engine, T0 + timedelta(hours=1))
    assert again_p.count("unchanged") == 10 and again_c.count("unchanged") == 41
    assert again_p.count("new_version") == again_c.count("created") == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM grids")).scalar() == 51

    index = grids.load_index(engine)
    where = index.locate(-122.4194, 37.7600)  # 20th and Mission
    assert where.community is not None and where.community.name == "Mission"
    assert where.police is not None and where.police.name == "MISSION"


def test_a_changed_boundary_is_a_new_version_and_the_past_keeps_the_old_one(engine: Engine) -> None:
    _import_sf(engine)
    doc = _doc(DISTRICTS_PATH)
    changed = copy.deepcopy(doc)
    target = next(f for f in changed["features"] if f["properties"]["district"] == "PARK")
    old_first = target["geometry"]["coordinates"][0][0][1]
    target["geometry"]["coordinates"][0][0][1] = [old_first[0] + 0.0005, old_first[1] + 0.0005]
    later = T0 + timedelta(days=1)
    report = grids.import_grids(engine, changed, level="police", name_property="district", now=later)
    assert report.count("new_version") == 1 and report.count("unchanged") == 9
    assert report.outcomes["police-park"] == "new_version"

    now = grids.get_grid(engine, "police-park")
    before = grids.get_grid(engine, "police-park", at=later - timedelta(seconds=1))
    assert now is not None and before is not None
    assert (now.version, before.version) == (2, 1) and before.valid_to == later and now.valid_from == later
    assert not now.geometry.equals(before.geometry)
    assert grids.get_grid(engine, "police-park", at=T0 - timedelta(seconds=1)) is None
    assert [r.version for r in grids.history(engine, "police-park")] == [1, 2]
    assert len(grids.list_grids(engine, level="police", at=later - timedelta(seconds=1))) == 10
    # Reports about the past see the boundary valid then.
    old_index = grids.load_index(engine, at=later - timedelta(seconds=1))
    assert old_index.get("police-park").geometry.equals(before.geometry)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM grids")).scalar_one())


def test_one_bad_feature_stops_the_whole_import(engine: Engine) -> None:
    doc = _doc(DISTRICTS_PATH)
    ring = doc["features"][4]["geometry"]["coordinates"][0][0]
    ring[-1] = [ring[-1][0] + 0.001, ring[-1][1]]
    name = doc["features"][4]["properties"]["district"]
    with pytest.raises(grids.FeatureError) as err:
        grids.import_grids(engine, doc, level="police", name_property="district", now=T0)
    why = "geometry ring 0 of polygon 0 is not closed: its first and last positions differ"
    assert str(err.value) == f"feature 4 ({name}): {why}"
    assert _count(engine) == 0


def test_a_failure_inside_the_transaction_leaves_nothing_behind(engine: Engine) -> None:
    grids.import_grids(engine, _doc(DISTRICTS_PATH), level="police", name_property="district", now=T0)
    doc = _doc(NEIGHBORHOODS_PATH)
    for k, feature in enumerate(doc["features"]):
        feature["properties"]["district"] = "MISSION" if k < 30 else "ATLANTIS"
    with pytest.raises(grids.FeatureError, match=r"^feature 30 \(.+\): its parent 'ATLANTIS' is not"):
        grids.import_grids(
            engine, doc, level="community", name_property="neighborhood", parent_property="district", now=T0
        )
    assert _count(engine) == 10  # the 30 grids written before feature 30 were rolled back


def test_a_named_parent_is_taken_and_its_share_reported(engine: Engine) -> None:
    grids.import_grids(engine, _doc(DISTRICTS_PATH), level="police", name_property="district", now=T0)
    doc = _doc(NEIGHBORHOODS_PATH)
    for feature in doc["features"]:
        feature["properties"]["district"] = "mission"  # by name, any case
    report = grids.import_grids(
        engine, doc, level="community", name_property="neighborhood", parent_property="district", now=T0
    )
    assert {g.parent_id for g in grids.list_grids(engine, level="community")} == {"police-mission"}
    assert len(report.to_check()) == 41 - 1  # only Mission itself lies ≥ 80 % in MISSION


@pytest.mark.parametrize(
    ("document", "kwargs", "message"),
    [
        ({"type": "Feature"}, {}, "not a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, {}, "no features"),
        (
            {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"n": "x"}}]},
            {},
            "feature 0: no property 'name'",
        ),
        ({"type": "FeatureCollection", "features": [1]}, {}, "feature 0: is not a GeoJSON Feature"),
        (None, {"level": "city"}, "level must be one of"),
        (None, {"parent_property": "p"}, "police grids have no parent"),
    ],
)
def test_bad_documents_are_refused_in_one_sentence(
    engine: Engine, document: Any, kwargs: Any, message: str
) -> None:
    options: dict[str, Any] = {"level": "police", **kwargs}
    with pytest.raises(grids.GridError, match=message):
        grids.import_grids(
            engine, document or {"type": "FeatureCollection", "features": [{}]}, now=T0, **options
        )


def test_duplicate_names_and_a_community_import_without_police_are_refused(engine: Engine) -> None:
    doc = _doc(DISTRICTS_PATH)
    doc["features"][3]["properties"]["district"] = doc["features"][1]["properties"]["district"]
    with pytest.raises(grids.FeatureError, match=r"feature 3 \(.+\): the same name as feature 1"):
        grids.import_grids(engine, doc, level="police", name_property="district", now=T0)
    with pytest.raises(grids.FeatureError, match="no police grids yet"):
        grids.import_grids(
            engine, _doc(NEIGHBORHOODS_PATH), level="community", name_property="neighborhood", now=T0
        )
    assert _count(engine) == 0


def test_create_update_retire(engine: Engine) -> None:
    _import_sf(engine)
    square = MultiPolygon([box(-122.42, 37.76, -122.41, 37.77)])
    made = grids.create_grid(
        engine, grid_id="beat-7", level="community", name="Beat 7", parent_id=None, geometry=square, now=T0
    )
    assert made.parent_id == "police-mission" and made.version == 1
    with pytest.raises(grids.GridConflict, match="exists"):
        grids.create_grid(
            engine, grid_id="beat-7", level="community", name="x", parent_id=None, geometry=square, now=T0
        )
    with pytest.raises(grids.GridError, match="not a current police grid"):
        grids.create_grid(
            engine, grid_id="beat-8", level="community", name="x", parent_id="nope", geometry=square, now=T0
        )

    later = T0 + timedelta(hours=2)
    outcome, same = grids.update_grid(engine, "beat-7", name="Beat 7", now=later)
    assert outcome == "unchanged" and same.version == 1
    outcome, renamed = grids.update_grid(
        engine, "beat-7", name="Beat Seven", parent_id="police-park", now=later
    )
    assert outcome == "new_version" and renamed.version == 2 and renamed.parent_id == "police-park"

    with pytest.raises(grids.GridConflict, match="has community grids"):
        grids.retire_grid(engine, "police-park", now=later)
    gone = grids.retire_grid(engine, "beat-7", now=later + timedelta(hours=1))
    assert gone.valid_to == later + timedelta(hours=1)
    assert grids.get_grid(engine, "beat-7") is None
    assert grids.get_grid(engine, "beat-7", at=later) is not None
    with pytest.raises(grids.GridNotFound):
        grids.retire_grid(engine, "beat-7", now=later + timedelta(hours=2))
    back = grids.create_grid(
        engine,
        grid_id="beat-7",
        level="community",
        name="Beat 7",
        parent_id=None,
        geometry=square,
        now=later + timedelta(hours=3),
    )
    assert back.version == 3


def test_postgis_stores_a_multipolygon_4326_with_a_gist_index(pg_url: str) -> None:
    engine = open_engine(pg_url, pool_size=1)
    try:
        with engine.connect() as conn:
            column = conn.execute(
                text("SELECT type, srid FROM geometry_columns WHERE f_table_name = 'grids'")
            ).one()
            assert tuple(column) == ("MULTIPOLYGON", 4326)
            indexes = (
                conn.execute(text("SELECT indexdef FROM pg_indexes WHERE tablename = 'grids'"))
                .scalars()
                .all()
            )
            assert any("USING gist (geom)" in i for i in indexes), indexes
        grids.import_grids(engine, _doc(DISTRICTS_PATH), level="police", name_property="district", now=T0)
        with engine.connect() as conn:
            name = conn.execute(
                text(
                    "SELECT name FROM grids WHERE valid_to IS NULL AND "
                    "ST_Covers(geom, ST_SetSRID(ST_MakePoint(-122.4194, 37.76), 4326))"
                )
            ).scalar_one()
            assert name == "MISSION"
    finally:
        engine.dispose()
