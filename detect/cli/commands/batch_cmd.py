"""`harborwatch batch JOBS.yaml`: many AOIs × periods × sources on dask.distributed (see docs/scale.md)."""

from __future__ import annotations

import logging
import sys

import click

from detect.cli.app import cli, emit
from detect.core.device import device_option


@cli.command("batch")
@click.argument("jobs", type=click.Path(dir_okay=False))
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Batch folder (resumable)."
)
@click.option("--scheduler", default=None, help="Address of a running dask scheduler, e.g. tcp://HOST:8786.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Workers of the local cluster (ignored with --scheduler).",
)
@click.option(
    "--threads-per-worker",
    type=click.IntRange(min=1),
    default=None,
    help="Default 1 on CPU, 4 on CUDA (shared GPU batches).",
)
@click.option(
    "--processes/--no-processes",
    default=True,
    show_default=True,
    help="Local workers as processes, or as threads of this process (debugging, small batches).",
)
@click.option("--device", default="cpu", show_default=True, callback=device_option, help="cpu, cuda, cuda:0.")
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    help="Re-runs of a failing scene before it is reported.",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Imagery cache folder.")
@click.option("--report", is_flag=True, help="Also write each job's charts, crops, map and report (slower).")
@click.option("--json", "as_json", is_flag=True, help="Print the batch summary as JSON on stdout.")
def batch_cmd(
    jobs: str,
    out: str,
    scheduler: str | None,
    workers: int,
    threads_per_worker: int | None,
    processes: bool,
    device: str,
    retries: int,
    cache_dir: str | None,
    report: bool,
    as_json: bool,
) -> None:
    """Run every job in JOBS (YAML: aoi(s), start/end or periods, source(s), classes) with one dask task
    per scene; write per-job run folders plus partitioned Parquet datasets under --out.

    A rerun with the same --out skips finished scenes. Exit 1 if a job could not be finished; scenes
    that kept failing are listed in the summary (and batch.json) without failing the batch.
    """
    from detect.pipeline.batch import load_jobs, run_batch

    job_list = load_jobs(jobs)  # bad YAML is an input error (exit 2) before any cluster starts
    result = run_batch(
        job_list,
        out,
        scheduler=scheduler,
        workers=workers,
        device=device,
        threads_per_worker=threads_per_worker,
        processes=processes,
        retries=retries,
        cache_dir=cache_dir,
        report=report,
        command=["harborwatch", *sys.argv[1:]],
        # progress through the log, so -q silences it (with --json run_batch logs it at INFO itself)
        progress=None if as_json else lambda msg: logging.getLogger("harborwatch").info("%s", msg),
    )
    summary = result.summary()
    emit(summary, as_json, _human(summary))
    if not result.ok:
        sys.exit(1)


def _human(s: dict) -> str:
    lines = [
        f"{len(s['jobs'])} job(s) on {s['scheduler']}: {s['scenes_processed']} scene(s) processed in "
        f"{s['elapsed_s']:.1f} s ({s['scenes_per_hour'] or 0:.0f} scenes/hour), {s['failed_scenes']} failed"
    ]
    for j in s["jobs"]:
        sc = j["scenes"]
        lines.append(
            f"  {j['id']}: {j['status']}, {sc['total']} scene(s) ({sc['skipped_done']} already done, "
            f"{sc['processed']} processed, {sc['failed']} failed), {j.get('detections', 0)} detections"
        )
        lines += [f"    failed {f['scene']}: {f['reason']}" for f in j["failed_scenes"]]
        if j.get("error"):
            lines.append(f"    error: {j['error']}")
    lines.append(
        f"  datasets: {s['files'].get('detections_dataset')}, {s['files'].get('daily_counts_dataset')}"
    )
    return "\n".join(lines)
