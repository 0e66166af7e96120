"""`batch`: many AOIs × periods × sources on dask.distributed, one task per scene.

The driver searches each job's scenes; every scene without a finished record becomes a task that
runs ``pipeline.process_scene`` on a worker (``workers``: each model loaded once and kept); then each
job is finished by ``pipeline.run`` on the same run folder, which finds every scene done and writes
the same daily counts and outputs a single-process run would. Detections also go to a dataset
partitioned ``aoi=/date=``, daily counts to one partitioned ``aoi=/year=``. See docs/scale.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from detect.counting import aggregate as agg
from detect.detectors import detector_methods
from detect.pipeline.jobs import Job, load_jobs
from detect.pipeline.plan import plan_run
from detect.pipeline.records import load_done, plain_name, safe_name, scene_key
from detect.pipeline.result import RunResult
from detect.pipeline.runner import run
from detect.pipeline.search import search_scenes
from detect.pipeline.steps import Steps, default_steps
from detect.pipeline.workers import BatchTaskError, SceneTask, run_scene
from detect.sar.s1 import scene_sensor
from imagery.aoi import Aoi, get_aoi
from imagery.atomic import atomic_write_json
from imagery.errors import HarborwatchError, InputError
from imagery.types import Scene

log = logging.getLogger(__name__)


#: How often dask re-runs a scene task that raised (a failed read or detection) before reporting it.
DEFAULT_RETRIES = 2


@dataclass
class JobOutcome:
    """What became of one job: its scenes, the failures the workers reported, its run result."""

    job: Job
    status: str = "pending"  # ok | failed
    error: str = ""
    scenes_total: int = 0
    scenes_skipped: int = 0  # already finished before this batch
    scenes_processed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # scene id → reason
    result: RunResult | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.job.id,
            "aoi": self.job.aoi,
            "start": self.job.start.isoformat(),
            "end": self.job.end.isoformat(),
            "source": self.job.source,
            "classes": list(self.job.classes),
            "status": self.status,
            "scenes": {
                "total": self.scenes_total,
                "skipped_done": self.scenes_skipped,
                "processed": self.scenes_processed,
                "failed": len(self.failed),
            },
            "failed_scenes": [{"scene": s, "reason": r} for s, r in sorted(self.failed.items())],
        }
        if self.error:
            d["error"] = self.error
        if self.result is not None:
            if without := agg.unobserved_class_counts(self.result.scenes):
                d["scenes_without_class"] = without  # class -> scenes that could not be searched for it
            d["detections"] = len(self.result.detections)
            d["out_dir"] = str(self.result.out_dir)
        return d


@dataclass(frozen=True, eq=False)
class BatchResult:
    """A batch's outcome per job, its datasets and timing."""

    out_dir: Path
    jobs: tuple[JobOutcome, ...]
    elapsed_s: float
    scheduler: str
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every job finished (failed scenes are reported, not fatal)."""
        return all(j.status == "ok" for j in self.jobs)

    @property
    def daily_counts(self) -> pd.DataFrame:
        frames = [j.result.daily_counts for j in self.jobs if j.result is not None]
        if not frames:
            return pd.DataFrame(columns=list(agg.DAILY_COLUMNS))
        return pd.concat(frames, ignore_index=True)

    def summary(self) -> dict[str, Any]:
        processed = sum(j.scenes_processed for j in self.jobs)
        return {
            "out_dir": str(self.out_dir),
            "scheduler": self.scheduler,
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "scenes_processed": processed,
            "scenes_per_hour": round(processed / self.elapsed_s * 3600, 1) if self.elapsed_s else None,
            "failed_scenes": sum(len(j.failed) for j in self.jobs),
            "jobs": [j.to_dict() for j in self.jobs],
            "files": {k: str(v) for k, v in self.paths.items()},
        }


@dataclass
class _Plan:
    outcome: JobOutcome
    area: Aoi | None
    found: list[Scene]
    tasks: list[SceneTask]


def _plan(job: Job, out: Path, steps: Steps | None, device: str, cache_dir: str | None) -> _Plan:
    """Search the job's scenes and make a task of each one not yet finished.

    The set-up (sensors, collections, methods, record keys) is ``pipeline.plan_run``'s, the same as
    the finishing ``run``'s, so that it finds every scene done.
    """
    setup = plan_run(
        job.aoi,
        job.start,
        source=job.source,
        collection=job.collection,
        classes=job.classes,
        method=job.method,
        conf=job.conf,
        sensors=job.sensors,
    )
    area, grid, methods, keys = setup.area, setup.grid, setup.methods, setup.keys
    scenes_dir = out / "jobs" / job.id / "scenes"
    scenes_dir.mkdir(parents=True, exist_ok=True)
    found = search_scenes(steps or default_steps(), setup, job.start, job.end, max_cloud=job.max_cloud)
    if job.baseline is not None:  # the baseline period's scenes are the job's scenes too
        more = search_scenes(steps or default_steps(), setup, *job.baseline, max_cloud=job.max_cloud)
        have = {s.id for s in found}
        found += [s for s in more if s.id not in have]
    outcome = JobOutcome(job, scenes_total=len(found))
    tasks = []
    for scene in found:
        sensor = scene_sensor(scene)
        key = scene_key(scene, keys[sensor])
        if load_done(scenes_dir / f"{safe_name(scene.id)}.json", key) is not None:
            outcome.scenes_skipped += 1
            continue
        tasks.append(
            SceneTask(
                scene=scene,
                aoi=area,
                grid=grid,
                methods=methods[sensor],
                conf=job.conf,
                device=device,
                cache_dir=cache_dir,
                source=job.source,
                params=agg.AggregateParams(),
                key=key,
                scenes_dir=str(scenes_dir),
                sensor=sensor,
                steps=steps,
            )
        )
    return _Plan(outcome, area, list(found), tasks)


class _ReportFailed:
    """``Steps.read`` for the finishing ``run``: scenes the workers gave up on fail again with the
    workers' reason (no second attempt in the driver); other reads (the report's map) go through."""

    def __init__(self, read: Callable[..., Any], failed: Mapping[str, str]) -> None:
        self.read, self.failed = read, failed

    def __call__(self, scene: Scene, *args: Any, **kw: Any) -> Any:
        if scene.id in self.failed:
            raise BatchTaskError(self.failed[scene.id])
        return self.read(scene, *args, **kw)


def _finish(
    plan: _Plan,
    out: Path,
    steps: Steps | None,
    device: str,
    cache_dir: str | None,
    report: bool,
    command: Sequence[str] | None,
) -> RunResult:
    job = plan.outcome.job
    base = steps or default_steps()
    found = plan.found

    def search(aoi: Any, start: Any, end: Any, **kw: Any) -> list[Scene]:
        """The scenes the driver found: all of them, or with a baseline, those of the period asked for."""
        return [s for s in found if job.baseline is None or start <= s.datetime.date() <= end]

    finishing = replace(
        base,
        search=search,
        read=_ReportFailed(base.read, plan.outcome.failed),
        read_sar=_ReportFailed(base.read_sar, plan.outcome.failed),
        required_bands=lambda methods: (),  # every scene left here fails in read, before bands matter
    )
    return run(
        plan.area,
        job.start,
        job.end,
        out_dir=out / "jobs" / job.id,
        source=job.source,
        collection=job.collection,
        sensors=job.sensors,
        classes=job.classes,
        max_cloud=job.max_cloud,
        claims=job.claims,
        baseline=job.baseline,
        cache_dir=cache_dir,
        method=job.method,
        device=device,
        conf=job.conf,
        progress=False,
        steps=finishing,
        command=command,
        report=report,
    )


def _client(scheduler: str | None, workers: int, threads: int, processes: bool) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    # importing distributed sets its loggers to INFO; in-process workers (--no-processes) would print their
    # start-up through this process's log (silence_logs covers worker processes only). -vv shows them.
    if logging.getLogger().level > logging.DEBUG:
        for name in [n for n in logging.root.manager.loggerDict if n.split(".")[0] == "distributed"]:
            logging.getLogger(name).setLevel(logging.WARNING)
    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as e:
            raise InputError(f"cannot reach the dask scheduler at {scheduler}: {e}") from None
        except (ValueError, TypeError) as e:  # distributed's address parser: no port, unknown protocol
            raise InputError(
                f"--scheduler {scheduler!r} is not a dask scheduler address (e.g. tcp://HOST:8786): {e}"
            ) from None
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=threads,
        processes=processes,
        dashboard_address=None,
        silence_logs=logging.WARNING,
    )
    return Client(cluster), cluster


def run_batch(
    jobs: Sequence[Job] | str | Path,
    out_dir: str | Path,
    *,
    scheduler: str | None = None,
    workers: int = 2,
    device: str = "cpu",
    threads_per_worker: int | None = None,
    processes: bool = True,
    retries: int = DEFAULT_RETRIES,
    cache_dir: str | Path | None = None,
    steps: Steps | None = None,
    report: bool = False,
    command: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BatchResult:
    """Run ``jobs`` (or a jobs YAML) on dask: a LocalCluster of ``workers`` or the cluster at ``scheduler``.

    Resumable: scenes with a finished record under ``out_dir/jobs/<id>/scenes`` are not resubmitted.
    A task that raises is retried ``retries`` times (a killed worker's tasks are rescheduled by dask),
    then reported in the job's ``failed`` and the batch goes on. ``threads_per_worker`` defaults to 1
    on CPU and 4 on CUDA (concurrent scenes share GPU batches and overlap reading with inference).
    ``steps`` replaces the pipeline's steps (tests); ``report`` also writes each job's charts and report.
    """
    t0 = time.perf_counter()
    job_list = load_jobs(jobs) if isinstance(jobs, str | Path) else list(jobs)
    if not job_list:
        raise InputError("no jobs to run")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = str(cache_dir) if cache_dir else None
    say = progress or (lambda msg: log.info("%s", msg))

    for job in job_list:  # bad input fails the batch before any search or compute
        get_aoi(job.aoi)
        detector_methods(job.classes, job.method)
    from concurrent.futures import ThreadPoolExecutor

    def plan_or_fail(job: Job) -> _Plan:
        try:
            return _plan(job, out, steps, device, cache)
        except InputError:
            raise
        except HarborwatchError as e:  # a catalogue that fails for one job: report it, go on
            o = JobOutcome(job, status="failed", error=f"{type(e).__name__}: {e}")
            say(f"{job.id}: not planned: {o.error}")
            return _Plan(o, None, [], [])

    with ThreadPoolExecutor(max_workers=min(8, len(job_list))) as pool:  # catalogue searches are I/O
        plans = list(pool.map(plan_or_fail, job_list))
    n_tasks = sum(len(p.tasks) for p in plans)
    say(f"{len(plans)} job(s), {sum(p.outcome.scenes_total for p in plans)} scene(s), {n_tasks} to process")

    if n_tasks:
        threads = threads_per_worker or (4 if device.startswith("cuda") else 1)
        client, cluster = _client(scheduler, workers, threads, processes)
        try:
            _submit_and_collect(client, plans, retries, say)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    where = scheduler or f"LocalCluster({workers} worker(s), {'processes' if processes else 'threads'})"

    for plan in plans:
        o = plan.outcome
        if o.status == "failed":
            continue
        try:
            o.result = _finish(plan, out, steps, device, cache, report, command)
            if o.result.every_scene_failed:  # outputs written, work failed
                n = len(o.result.scenes)
                o.status, o.error = "failed", f"all {n} scene(s) failed; a rerun retries them"
            else:
                o.status = "ok"
        except HarborwatchError as e:
            o.status, o.error = "failed", f"{type(e).__name__}: {e}"
    result = BatchResult(out, tuple(p.outcome for p in plans), time.perf_counter() - t0, where)
    result.paths.update(write_datasets(result))
    finished = datetime.now(timezone.utc).isoformat()
    summary = {**result.summary(), "finished": finished, "command": list(command or [])}
    result.paths["batch_json"] = atomic_write_json(out / "batch.json", summary)
    return result


def _submit_and_collect(client: Any, plans: list[_Plan], retries: int, say: Callable[[str], None]) -> None:
    from distributed import as_completed

    owner: dict[str, tuple[JobOutcome, str]] = {}
    futures = []
    for plan in plans:
        for task in plan.tasks:
            f = client.submit(
                run_scene,
                task,
                retries=retries,
                pure=False,
                key=f"scene-{plan.outcome.job.id}-{safe_name(task.scene.id)}-{time.time_ns()}",
            )
            owner[f.key] = (plan.outcome, task.scene.id)
            futures.append(f)
    for done, f in enumerate(as_completed(futures), start=1):
        outcome, scene_id = owner[f.key]
        if f.status == "finished":
            outcome.scenes_processed += 1
        else:
            try:
                e = f.exception()
            except Exception as err:  # a cancelled future has no exception to give, only this one
                e = err
            reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            outcome.failed[scene_id] = f"failed {retries + 1} time(s): {reason}"
            say(f"{outcome.job.id}: scene {scene_id} failed after {retries + 1} tries: {reason}")
        if done % 10 == 0 or done == len(futures):
            say(f"{done}/{len(futures)} scene tasks done")


def write_datasets(result: BatchResult) -> dict[str, Path]:
    """Detections as GeoParquet under ``detections/aoi=<aoi>/date=<day>/<job>.parquet`` and daily counts
    under ``daily_counts/aoi=<aoi>/year=<yyyy>/<job>.parquet`` (a year per file: one file per day would
    be mostly tiny files). A rerun rewrites a job's files and removes the ones it no longer makes."""
    from detect.report.tables import _parquet_ready, write_geoparquet
    from imagery.atomic import atomic_path

    roots = {
        "detections_dataset": result.out_dir / "detections",
        "daily_counts_dataset": result.out_dir / "daily_counts",
    }
    for o in result.jobs:
        if o.result is None:
            continue
        job_id, aoi = o.job.id, plain_name(o.result.aoi.name)
        written: set[Path] = set()
        dets = o.result.detections
        for day, part in dets.groupby(dets["date"].astype(str)) if len(dets) else ():
            path = roots["detections_dataset"] / f"aoi={aoi}" / f"date={day}" / f"{job_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_geoparquet(part.drop(columns=["date"]).reset_index(drop=True), path)
            written.add(path)
        daily = o.result.daily_counts
        years = pd.to_datetime(daily["date"]).dt.year if len(daily) else pd.Series(dtype=int)
        for year, part in daily.groupby(years) if len(daily) else ():
            path = roots["daily_counts_dataset"] / f"aoi={aoi}" / f"year={year}" / f"{job_id}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                _parquet_ready(part.drop(columns=["aoi"]).reset_index(drop=True)).to_parquet(tmp, index=False)
            written.add(path)
        for root in roots.values():
            for stale in root.glob(f"aoi=*/*/{job_id}.parquet"):
                if stale not in written:
                    stale.unlink()
    return roots
