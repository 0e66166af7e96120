"""`batch` on a 2-worker LocalCluster over the bundled real sample chips: the same daily counts as the
single-process `run`, failing scenes retried then reported, resume without repeated work, jobs-file
validation, the CLI; and the GPU-path building blocks (prefetch, cross-scene batching) on CPU."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from detect import pipeline
from detect.detectors import register_detector
from detect.pipeline import batch
from detect.pipeline.gpu import BatchingPredictor, detect_stream, prefetch
from detect.pipeline.jobs import Job, expand_jobs, load_jobs
from detect.ships.baseline import BaselineDetector
from imagery.errors import InputError
from imagery.samples import list_samples, sample_dir

SAMPLES = [s for s in list_samples() if s.id.startswith(("athens", "genoa"))]
BUILDS: list[str] = []


def _counted_baseline(device: str = "cpu", **kw):
    BUILDS.append(device)
    return BaselineDetector(**kw)


register_detector("ship", "counted-baseline", _counted_baseline)


def _aoi(sample) -> str:
    w, s, e, n = sample.bbox
    dx, dy = (e - w) * 0.04, (n - s) * 0.04
    return f"{w + dx},{s + dy},{e - dx},{n - dy}"


def _jobs(method: str = "counted-baseline") -> list[Job]:
    return [
        Job(
            aoi=_aoi(s),
            start=s.datetime.date() - timedelta(days=1),
            end=s.datetime.date() + timedelta(days=1),
            source=f"local:{sample_dir()}",
            method=method,
            name=s.id,
        )
        for s in SAMPLES
    ]


class FailingRead:
    """``Steps.read`` that fails for one scene, counting its attempts (workers are threads here)."""

    attempts: ClassVar[list[str]] = []

    def __init__(self, read, scene_id: str) -> None:
        self.read, self.scene_id = read, scene_id

    def __call__(self, scene, *args, **kw):
        if scene.id == self.scene_id:
            FailingRead.attempts.append(scene.id)
            raise OSError("injected: bucket unreachable")
        return self.read(scene, *args, **kw)


def _batch(out: Path, **kw) -> batch.BatchResult:
    return batch.run_batch(_jobs(), out, workers=2, processes=False, **kw)


@pytest.fixture(scope="module")
def batched(tmp_path_factory) -> tuple[batch.BatchResult, Path]:
    out = tmp_path_factory.mktemp("batch")
    return _batch(out), out


def test_two_workers_give_the_same_daily_counts_as_single_process_run(batched, tmp_path):
    result, out = batched
    assert result.ok and [j.scenes_processed for j in result.jobs] == [1, 1]
    for job, outcome in zip(_jobs(), result.jobs, strict=True):
        single = pipeline.run(
            job.aoi, job.start, job.end, out_dir=tmp_path / job.id, source=job.source,
            method=job.method, progress=False, report=False,
        )  # fmt: skip
        pd.testing.assert_frame_equal(outcome.result.daily_counts, single.daily_counts)
        assert len(outcome.result.detections) == len(single.detections) > 0
        assert (out / "jobs" / job.id / "daily_counts.csv").read_text() == (
            tmp_path / job.id / "daily_counts.csv"
        ).read_text()
    # one detector build in this process although two worker threads and run() all detected
    assert BUILDS == ["cpu"]


def test_partitioned_datasets_hold_every_detection_and_day(batched):
    result, out = batched
    dets = ds.dataset(out / "detections", format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(dets) == sum(len(j.result.detections) for j in result.jobs)
    assert set(dets["date"].astype(str)) == {s.datetime.date().isoformat() for s in SAMPLES}
    assert dets["aoi"].nunique() == len(SAMPLES)
    geo = json.loads(pq.read_schema(next((out / "detections").rglob("*.parquet"))).metadata[b"geo"])
    assert geo["primary_column"] == "geometry"
    daily = ds.dataset(out / "daily_counts", format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(daily) == len(result.daily_counts)
    summary = json.loads((out / "batch.json").read_text())
    assert summary["ok"] and summary["scenes_processed"] == 2 and summary["failed_scenes"] == 0


def test_a_failing_scene_is_retried_then_reported_and_a_rerun_only_redoes_it(tmp_path):
    failing = SAMPLES[0].id
    FailingRead.attempts.clear()
    steps = replace(pipeline.default_steps(), read=FailingRead(pipeline.default_steps().read, failing))
    first = _batch(tmp_path, steps=steps, retries=2)

    assert FailingRead.attempts == [failing] * 3  # the first try and two retries
    bad, good = first.jobs
    # reported, and the batch went on; a job none of whose scenes could be read failed (its outputs are
    # written, all unobserved), so the batch is not ok
    assert (
        not first.ok
        and (bad.status, good.status) == ("failed", "ok")
        and "all 1 scene(s) failed" in bad.error
    )
    assert list(bad.failed) == [failing] and "injected: bucket unreachable" in bad.failed[failing]
    assert "3 time(s)" in bad.failed[failing]
    assert good.scenes_processed == 1 and not good.failed
    scenes = bad.result.scenes.set_index("scene")
    assert scenes.loc[failing, "status"] == "failed" and "injected" in scenes.loc[failing, "reason"]
    assert bad.result.daily()["count"].isna().all()  # no view of the failed day: unobserved, not zero
    summary = json.loads((tmp_path / "batch.json").read_text())
    assert summary["failed_scenes"] == 1
    assert summary["jobs"][0]["failed_scenes"][0]["scene"] == failing

    again = _batch(tmp_path)  # fixed: only the failed scene is processed
    assert [(j.scenes_skipped, j.scenes_processed) for j in again.jobs] == [(0, 1), (1, 0)]
    assert again.jobs[0].result.daily()["count"].notna().any()

    third = _batch(tmp_path)  # all done: no task is submitted, the outputs stay the same
    assert [(j.scenes_skipped, j.scenes_processed) for j in third.jobs] == [(1, 0), (1, 0)]
    pd.testing.assert_frame_equal(third.daily_counts, again.daily_counts)


def test_jobs_expand_aois_periods_and_sources_and_bad_entries_are_named(tmp_path):
    jobs = expand_jobs(
        [{"aois": ["longkou-port", "nampo-port"], "periods": [["2023-01-01", "2023-01-31"],
          {"start": "2023-02-01", "end": "2023-02-28"}], "sources": ["earth-search", "planetary-computer"]}],
        defaults={"classes": "ship,truck"},
    )  # fmt: skip
    assert len(jobs) == 8 and len({j.id for j in jobs}) == 8
    assert jobs[0].classes == ("ship", "truck") and str(jobs[-1].end) == "2023-02-28"
    with pytest.raises(InputError, match="job 1: unknown field"):
        expand_jobs([{"aoi": "x", "start": "2023-01-01", "end": "2023-01-02", "colour": 1}])
    with pytest.raises(InputError, match="defaults: unknown field"):  # not "job 1", where they first apply
        expand_jobs([{"aoi": "x", "start": "2023-01-01", "end": "2023-01-02"}], defaults={"colour": 1})
    with pytest.raises(InputError, match="job 2: give start and end"):
        expand_jobs([{"aoi": "a", "start": "2023-01-01", "end": "2023-01-02"}, {"aoi": "b"}])
    with pytest.raises(InputError, match="before start"):
        expand_jobs([{"aoi": "a", "start": "2023-01-05", "end": "2023-01-02"}])
    bad = tmp_path / "jobs.yaml"
    bad.write_text("jobs: {aoi: x}\n")
    with pytest.raises(InputError, match="expected a list of jobs"):
        load_jobs(bad)
    example = load_jobs(Path(__file__).parents[3] / "examples" / "jobs.yaml")
    assert example and all(j.start <= j.end for j in example)


def _genoa_jobs(tmp_path: Path) -> Path:
    """A jobs file of one job: the Genoa sample's day, counted by the test detector."""
    s = SAMPLES[1]
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        f"defaults: {{source: samples, method: counted-baseline}}\njobs:\n"
        f"  - {{name: genoa, aoi: '{_aoi(s)}', start: {s.datetime.date()}, end: {s.datetime.date()}}}\n"
    )
    return jobs


def test_cli_batch_prints_a_json_summary_and_refuses_bad_jobs_files(tmp_path, capsys):
    from detect.cli import main

    jobs = _genoa_jobs(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["batch", str(jobs), "--out", str(tmp_path / "o"), "--workers", "1", "--no-processes", "--json"])
    assert exit_.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["jobs"][0]["id"] == "genoa" and summary["jobs"][0]["detections"] > 0
    jobs.write_text("jobs:\n  - {aoi: genoa}\n")
    with pytest.raises(SystemExit) as exit_:
        main(["batch", str(jobs), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2 and "give start and end" in capsys.readouterr().err


def test_a_quiet_batch_on_in_process_workers_prints_no_dask_start_up(tmp_path, capsys):
    # importing distributed sets its loggers to INFO: ~20 scheduler and worker lines printed under -q
    from detect.cli import main

    jobs = _genoa_jobs(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["-q", "batch", str(jobs), "--out", str(tmp_path / "o"), "--workers", "1", "--no-processes"])
    err = capsys.readouterr().err
    assert exit_.value.code == 0
    assert "Scheduler" not in err and "worker" not in err.lower() and "scene tasks done" not in err


# --------------------------------------------------------------------------- GPU-path building blocks


def test_prefetch_reads_the_next_item_while_the_current_one_is_processed():
    second_read_started = threading.Event()

    def read(i: int) -> int:
        if i == 1:
            second_read_started.set()
        if i == 3:
            raise OSError("unreadable")
        return i * 10

    def detect(window: int) -> int:
        # Without read-ahead the second read could only start after this returns: the wait would time out.
        if window == 0:
            assert second_read_started.wait(timeout=5), "item 1 was not read while item 0 was detected"
        return window + 1

    out = list(detect_stream(range(5), read, detect, depth=2))
    assert [i for i, _ in out] == [0, 1, 2, 3, 4]
    assert [r for _, r in out if not isinstance(r, Exception)] == [1, 11, 21, 41]
    assert isinstance(out[3][1], OSError)  # one bad scene does not end the stream
    with pytest.raises(ValueError):
        next(prefetch([1], read, depth=0))


class RecordingModel:
    """A model stub that answers each chip with one box holding the chip's mean value."""

    def __init__(self) -> None:
        self.spec = object()
        self.calls: list[int] = []
        self.device = "cpu"

    def predict(self, chips, conf=0.25, iou=0.5, half=False):
        self.calls.append(len(chips))
        time.sleep(0.05)
        return [np.array([[c.mean(), 0, 1, 1, 0, conf, 0]], np.float32) for c in chips]


def test_batching_predictor_merges_concurrent_scenes_into_one_model_call():
    model = RecordingModel()
    bp = BatchingPredictor(model, max_batch=64, max_wait_s=0.5)
    chips = [np.full((n, 8, 8, 4), k, np.uint8) for k, n in ((1, 3), (2, 5), (3, 2))]
    results: dict[int, list[np.ndarray]] = {}
    threads = [
        threading.Thread(target=lambda k=k, c=c: results.__setitem__(k, bp.predict(c, conf=0.3)))
        for k, c in enumerate(chips)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bp.close()
    assert model.calls == [10]  # three scenes' chips in one call
    for k, c in enumerate(chips):  # and each caller got back exactly its own chips' boxes
        assert [float(r[0, 0]) for r in results[k]] == [float(k + 1)] * len(c)
    assert bp.stats == {"requests": 3, "model_calls": 1, "chips": 10}
    assert bp.half is False  # no fp16 on CPU


def test_batching_predictor_gives_the_same_boxes_as_the_model_on_a_real_chip():
    from detect.core.bands import to_model_input
    from detect.ships.model import YoloModel
    from detect.ships.yolo import ShipDetector
    from imagery.read import open_raster

    model = YoloModel.load("ships-s2")
    window = open_raster(Path(__file__).parents[2] / "fixtures" / "chips" / "honolulu_chip.tif")
    direct = ShipDetector(model).detect(window)
    bp = BatchingPredictor(model, max_wait_s=0.01)
    batched = ShipDetector(bp, batch_size=4).detect(window)  # several requests, merged again
    bp.close()
    assert len(direct) == len(batched) > 0
    for a, b in zip(direct, batched, strict=True):
        assert a.polygon.equals_exact(b.polygon, 1e-6) and abs(a.score - b.score) < 1e-5
    assert to_model_input(window, model.spec).dtype == np.uint8


@pytest.mark.gpu
def test_gpu_fp16_batched_detections_match_cpu_within_tolerance():
    """Tolerance: every CPU detection with score >= 0.3 has a GPU partner with IoU >= 0.9 and a score
    within 0.02 (fp16 moves scores by ~1e-3 and box edges by a fraction of a pixel)."""
    import torch

    from detect.ships.model import YoloModel
    from detect.ships.yolo import ShipDetector
    from imagery.read import open_raster

    assert torch.cuda.is_available()
    window = open_raster(Path(__file__).parents[2] / "fixtures" / "chips" / "honolulu_chip.tif")
    cpu = ShipDetector(YoloModel.load("ships-s2")).detect(window)
    bp = BatchingPredictor(YoloModel.load("ships-s2", device="cuda:0"))
    assert bp.half
    gpu = ShipDetector(bp, batch_size=64, device="cuda:0").detect(window)
    bp.close()
    for a in (d for d in cpu if d.score >= 0.3):
        ious = [a.polygon.intersection(b.polygon).area / a.polygon.union(b.polygon).area for b in gpu]
        best = int(np.argmax(ious))
        assert ious[best] >= 0.9 and abs(gpu[best].score - a.score) <= 0.02


@pytest.mark.parametrize("address", ["notanaddress", "bogus://host:1"])
def test_a_scheduler_address_that_is_not_one_is_bad_input(address):
    """distributed's address parser raises ValueError, which reached the user as a traceback (exit 1)."""
    with pytest.raises(InputError, match="not a dask scheduler address"):
        batch._client(address, 1, 1, False)


def test_a_named_entry_over_several_sources_or_periods_of_one_start_gets_a_folder_per_job():
    """The name of a job of a named entry held only its AOI and start (and the bbox lost its last decimals to
    Path.stem): two sources, or two periods from one day, were refused as sharing a folder."""
    jobs = expand_jobs(
        [{"name": "g", "aoi": "8.8776,44.3879,8.9239,44.4211", "start": "2023-07-10", "end": "2023-07-10",
          "sources": ["samples", "local:/data"]},
         {"name": "h", "aoi": "a.geojson", "source": "samples",
          "periods": [["2023-07-01", "2023-07-12"], ["2023-07-01", "2023-07-31"]]}]
    )  # fmt: skip
    assert [j.id for j in jobs] == [
        "g_8.8776_44.3879_8.9239_44.4211_2023-07-10_samples",
        "g_8.8776_44.3879_8.9239_44.4211_2023-07-10_local_data",
        "h_a_2023-07-01_2023-07-12",
        "h_a_2023-07-01_2023-07-31",
    ]


@pytest.mark.parametrize(
    "entry",
    [
        {"aoi": "x", "aois": ["y"], "start": "2023-01-01", "end": "2023-01-02"},
        {"aoi": "x", "start": "2023-01-01", "end": "2023-01-02", "periods": [["2023-02-01", "2023-02-02"]]},
        {"aoi": "x", "start": "2023-01-01", "end": "2023-01-02", "source": "samples", "sources": ["samples"]},
    ],
)
def test_an_entry_giving_a_field_both_ways_is_refused(entry):
    """`aoi` beside `aois` (or start/end beside `periods`) silently ran only one of them."""
    with pytest.raises(InputError, match="not both"):
        expand_jobs([entry])


def test_an_entrys_own_source_wins_over_sources_in_defaults():
    jobs = expand_jobs(
        [{"aoi": "x", "start": "2023-01-01", "end": "2023-01-02", "source": "samples"}],
        defaults={"sources": ["earth-search", "planetary-computer"]},
    )
    assert [j.source for j in jobs] == ["samples"]


def test_a_jobs_files_relative_paths_are_taken_from_its_folder(tmp_path, monkeypatch):
    # an AOI file, a claims file and a local: folder written relative to the jobs file were looked up in
    # the working directory, so the same jobs file failed when run from elsewhere
    folder = tmp_path / "study"
    (folder / "scenes").mkdir(parents=True)
    (folder / "aoi.geojson").write_text("{}")
    (folder / "claims.yaml").write_text("[]")
    jobs = folder / "jobs.yaml"
    jobs.write_text(
        "jobs:\n  - {aoi: aoi.geojson, start: 2023-07-10, end: 2023-07-10, source: 'local:scenes', "
        "claims: claims.yaml}\n  - {aoi: genoa-port, start: 2023-07-10, end: 2023-07-10, source: samples}\n"
    )
    monkeypatch.chdir(tmp_path)  # not the jobs file's folder
    ids_there = [j.id for j in expand_jobs(
        [{"aoi": "aoi.geojson", "start": "2023-07-10", "end": "2023-07-10", "source": "local:scenes"}]
    )]  # fmt: skip
    first, second = load_jobs(jobs)
    assert first.aoi == str((folder / "aoi.geojson").resolve())
    assert first.claims == str((folder / "claims.yaml").resolve())
    assert first.source == f"local:{(folder / 'scenes').resolve()}"
    assert first.id == ids_there[0]  # the same job folder as before: a rerun resumes
    assert (second.aoi, second.source, second.claims) == ("genoa-port", "samples", None)  # not paths


def test_a_bundled_aoi_or_claims_name_is_not_taken_for_a_folder_of_that_name_beside_the_jobs_file(tmp_path):
    # a study folder holding its downloads as longkou-port/ and longkou-2018/ (as the README names them): the
    # AOI became that folder's path ("is a folder, not a GeoJSON file") and so did the bundled claims
    folder = tmp_path / "study"
    for name in ("longkou-port", "longkou-2018"):
        (folder / name).mkdir(parents=True)
    jobs = folder / "jobs.yaml"
    jobs.write_text(
        "jobs:\n  - {aoi: longkou-port, start: 2018-05-01, end: 2018-05-03, source: 'local:longkou-2018', "
        "claims: longkou-2018}\n"
    )
    (job,) = load_jobs(jobs)
    assert (job.aoi, job.claims) == ("longkou-port", "longkou-2018")
    assert job.source == f"local:{(folder / 'longkou-2018').resolve()}"
    assert job.id == "longkou-port_2018-05-01_2018-05-03_local_longkou-2018"
