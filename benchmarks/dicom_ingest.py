"""DICOM -> Delta against a bare ``pydicom.dcmread`` loop and dcmtk's ``dcmdump``, same corpus.

The corpus (6,000 files by default, at least 5,000) is made by replicating the real files of
``../shared/data/dicom/`` beside the repo, less those biofed's connector rejects by design, into
a temporary folder nested like a PACS export (``PAT/ST/SE/IM`` with opaque names). Each replica
gets a new SOP Instance UID (and Media Storage SOP Instance UID) and, per round of replication,
new Study and Series Instance UIDs; the transfer syntax, preamble and file meta presence are
kept and pixel data is written as read (never decoded). UIDs derive from a hash of the source
name and the replica number, so the corpus is the same on every run.

Then, each in a fresh subprocess (peak RSS is that step's own VmHWM), best of ``--attempts``:

(a) pydicom: ``for p in paths: pydicom.dcmread(p, stop_before_pixels=True, force=True)``, one
    process;
(b) biofed: ``pipelines.imaging.ingest_batch`` of the corpus folder into an empty lake (the
    connector's process pool, the bronze instances table, rejects and the batch ledger);
(b') the connector alone: ``iter_dicom_batches`` over the corpus without the Delta write, with
    its default pool and with one worker, to show where biofed's time goes;
(c) dcmtk's ``dcmdump`` over the same files, many per invocation, one invocation at a time:
    ``-q +P 0008,0018 +sb 7fe0,0010`` parses every header up to the pixel data and prints one
    tag (the native parsing reference); ``-q +sb 7fe0,0010`` prints the whole header as text to
    /dev/null (formatting the text costs dcmdump about 2.5x its parsing here). Skipped, and
    recorded as null, when dcmtk is not installed.

It prints files/s, biofed's ratio to the single-process pydicom rate and biofed's peak RSS.
Acceptance: ratio >= 1.5; target 1.8.

    python benchmarks/dicom_ingest.py [--files 6000] [--attempts 3]

Writes benchmarks/results/dicom_ingest.json.
"""

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "dicom_ingest.json"
SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
sys.path.insert(0, str(REPO))

SOURCE = REPO.parent / "shared" / "data" / "dicom"
MIN_FILES = 5_000
BATCH = "bench"
DCMDUMP_ARGS = {
    "dcmdump": ["-q", "+P", "0008,0018", "+sb", "7fe0,0010"],
    "dcmdump_text": ["-q", "+sb", "7fe0,0010"],
}
DCMDUMP_CHUNK = 500
ACCEPTANCE = {"ratio": 1.5}
TARGETS = {"ratio": 1.8}
SAMPLE_SECONDS = 0.5


def peak_rss_bytes(pid: int | str = "self") -> int | None:
    """A process's peak resident set size since it exec'd: VmHWM of /proc/<pid>/status.

    Not ``getrusage().ru_maxrss``: Linux carries that high-water mark across fork and exec,
    so a step would report its parent's peak instead of its own.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    if pid == "self":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return None


class DescendantPeaks:
    """Samples the VmHWM of this process's descendants (the connector's pool workers).

    A worker's own VmHWM is gone once it exits and the parent's VmHWM does not include it, so
    a background thread reads it while the step runs; VmHWM only grows, so the last sample of
    each worker is within one interval of its true peak.
    """

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "DescendantPeaks":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _descendants(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            # the command name may hold spaces or parentheses: fields follow the last ')'
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = [], [os.getpid()]
        while frontier:
            children = [pid for pid, ppid in parents.items() if ppid in frontier]
            found += children
            frontier = children
        return found

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            for pid in self._descendants():
                peak = peak_rss_bytes(pid)
                if peak is not None:
                    self.peaks[pid] = max(peak, self.peaks.get(pid, 0))

    def summary(self) -> dict[str, int]:
        return {
            "workers_sampled": len(self.peaks),
            "worker_peak_rss_bytes": max(self.peaks.values(), default=0),
            "workers_peak_rss_sum_bytes": sum(self.peaks.values()),
        }


# -- the corpus -----------------------------------------------------------------------------------


def rejected_sources(source: Path) -> list[str]:
    """Names of the source files biofed's connector rejects by design (left out of the corpus)."""
    from connectors.dicom import read_dicom

    result = read_dicom(source, on_error="quarantine", workers=1)
    return sorted({s.split("/")[-1] for s in result.rejects["source"].to_list()})


def new_uid(*parts: object) -> str:
    """A deterministic UID under the UUID-derived root 2.25 (PS3.5 B.2), at most 64 chars."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def encode_like_original(dataset: Any) -> bytes:
    """The dataset as a file with its original preamble, file meta, transfer syntax and
    encoding; pixel data bytes as read.

    Not ``save_as``: pydicom 3.0 refuses to write a transfer syntax it does not know (the
    Deflated Image Frame Compression one of liver_deflate.dcm), although the data set itself
    is plain explicit VR little endian.
    """
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset, write_file_meta_info

    buffer = io.BytesIO()
    fp = DicomFileLike(buffer)
    if dataset.preamble is not None:
        fp.write(dataset.preamble)
        fp.write(b"DICM")
    if dataset.file_meta:
        # enforce_standard recomputes the group length after the UID changed
        write_file_meta_info(fp, dataset.file_meta, enforce_standard=True)
    fp.is_implicit_VR, fp.is_little_endian = dataset.original_encoding
    write_dataset(fp, dataset)
    return buffer.getvalue()


def build_corpus(source: Path, out: Path, files: int, skip: list[str]) -> dict[str, Any]:
    """Replicate the source files into ``out`` until it holds ``files`` files.

    Round ``r`` holds one replica of every source file, in ``PAT{r // 10}/ST{r}/SE{i}/``;
    within a round, files that shared a study (or series) still share one, under a new UID.
    """
    import pydicom

    names = sorted(p.name for p in source.iterdir() if p.is_file() and p.name not in skip)
    written = 0
    size = 0
    with warnings.catch_warnings():
        # pydicom would quote a source's own malformed UIDs (bad_sequence.dcm) in warnings
        warnings.simplefilter("ignore")
        datasets = [pydicom.dcmread(source / name, force=True) for name in names]
        # later rounds map from the source's UIDs, not from the previous round's
        originals = [
            {k: str(ds[k].value) for k in ("StudyInstanceUID", "SeriesInstanceUID") if k in ds}
            for ds in datasets
        ]
        for index in range(files):
            round_, slot = divmod(index, len(names))
            dataset = datasets[slot]
            sop = new_uid("sop", names[slot], round_)
            dataset.SOPInstanceUID = sop
            if "MediaStorageSOPInstanceUID" in dataset.file_meta:
                dataset.file_meta.MediaStorageSOPInstanceUID = sop
            for keyword, original in originals[slot].items():
                setattr(dataset, keyword, new_uid(keyword, original, round_))
            folder = out / f"PAT{round_ // 10:04d}" / f"ST{round_:05d}" / f"SE{slot:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            data = encode_like_original(dataset)
            (folder / f"IM{index:06d}").write_bytes(data)
            written += 1
            size += len(data)
    return {"files": written, "bytes": size, "sources": names, "excluded_sources": skip}


def corpus_paths(corpus: Path) -> list[str]:
    return sorted(str(p) for p in corpus.rglob("*") if p.is_file())


# -- the measured steps, each run in its own subprocess --------------------------------------------


def run_pydicom(corpus: Path) -> dict[str, Any]:
    import pydicom

    paths = corpus_paths(corpus)
    started = time.perf_counter()
    for p in paths:
        pydicom.dcmread(p, stop_before_pixels=True, force=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "files": len(paths), "peak_rss_bytes": peak_rss_bytes()}


def run_pydicom_sha256(corpus: Path) -> dict[str, Any]:
    """The bare loop plus what biofed must also do per file: hash all of its bytes."""
    import pydicom

    paths = corpus_paths(corpus)
    started = time.perf_counter()
    for p in paths:
        data = Path(p).read_bytes()
        hashlib.sha256(data).hexdigest()
        pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "files": len(paths), "peak_rss_bytes": peak_rss_bytes()}


def sha256_mb_per_s() -> float:
    """This machine's SHA-256 throughput (CPUs without SHA extensions run it in software)."""
    block = os.urandom(64 << 20)
    started = time.perf_counter()
    hashlib.sha256(block).hexdigest()
    return round(64 * 2**20 / 1e6 / (time.perf_counter() - started), 1)


def run_biofed(corpus: Path, lake_root: Path) -> dict[str, Any]:
    from pipelines.imaging import ingest_batch
    from pipelines.lake import Lake

    with DescendantPeaks() as workers:
        started = time.perf_counter()
        ingest = ingest_batch(
            Lake(lake_root), corpus, BATCH, run_id="bench", ingested_at=datetime.now(UTC)
        )
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "files": ingest.files,
        "instances": ingest.instances_read,
        "rejected": ingest.rejected,
        "peak_rss_bytes": peak_rss_bytes(),
        **workers.summary(),
    }


def run_connector(corpus: Path, workers: int | None) -> dict[str, Any]:
    from connectors.dicom import iter_dicom_batches

    files = instances = rejected = 0
    with DescendantPeaks() as pool:
        started = time.perf_counter()
        for batch in iter_dicom_batches(corpus, on_error="quarantine", workers=workers):
            files += batch.files
            instances += batch.instances.height
            rejected += batch.rejects.height
        seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "files": files,
        "instances": instances,
        "rejected": rejected,
        "peak_rss_bytes": peak_rss_bytes(),
        **pool.summary(),
    }


def run_dcmdump(corpus: Path, arguments: list[str]) -> dict[str, Any]:
    paths = corpus_paths(corpus)
    chunks = [paths[i : i + DCMDUMP_CHUNK] for i in range(0, len(paths), DCMDUMP_CHUNK)]
    failed_chunks = 0
    started = time.perf_counter()
    for chunk in chunks:
        done = subprocess.run(
            ["dcmdump", *arguments, *chunk], stdout=subprocess.DEVNULL, check=False
        )
        failed_chunks += done.returncode != 0
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "seconds": seconds,
        "files": len(paths),
        "failed_chunks": failed_chunks,
        # the largest dcmdump's peak, or this small process's own if larger: ru_maxrss
        # carries over exec
        "peak_rss_bytes": children,
    }


def measure(step: str, corpus: Path, lake_root: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--step", step, "--corpus", str(corpus)]
    if lake_root is not None:
        command += ["--lake", str(lake_root)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the run ---------------------------------------------------------------------------------------


def best(runs: list[dict[str, Any]], files: int) -> dict[str, Any]:
    top = min(runs, key=lambda r: r["seconds"])
    return {
        **top,
        "seconds": round(top["seconds"], 3),
        "files_per_s": round(files / top["seconds"], 1),
        "all_seconds": [round(r["seconds"], 3) for r in runs],
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
    }


def dcmdump_version() -> str:
    done = subprocess.run(["dcmdump", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0].strip("$ ")


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6_000)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = {
        "pydicom": lambda: run_pydicom(args.corpus),
        "pydicom_sha256": lambda: run_pydicom_sha256(args.corpus),
        "biofed": lambda: run_biofed(args.corpus, args.lake),
        "connector": lambda: run_connector(args.corpus, None),
        "connector_1_worker": lambda: run_connector(args.corpus, 1),
        **{name: partial(run_dcmdump, args.corpus, argv) for name, argv in DCMDUMP_ARGS.items()},
    }
    if args.step:
        print(json.dumps(steps[args.step]()))
        return
    if args.files < MIN_FILES:
        parser.error(f"--files must be at least {MIN_FILES:,}")
    if not SOURCE.is_dir():
        sys.exit(f"no DICOM sources at {SOURCE}: clone the shared data beside the repo")

    script_started = time.perf_counter()
    load_before = os.getloadavg()
    dcmdump = shutil.which("dcmdump")
    if not dcmdump:
        print("dcmdump is not installed (Debian package dcmtk): no native reference this run")
    measured = [s for s in steps if dcmdump or not s.startswith("dcmdump")]
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in measured}
    with tempfile.TemporaryDirectory(prefix="biofed-dicom-bench-") as tmp:
        work = Path(tmp)
        # where the pipeline lands a batch: landing/imaging/<batch>/
        corpus = work / "landing" / "imaging" / BATCH
        skip = rejected_sources(SOURCE)
        started = time.perf_counter()
        made = build_corpus(SOURCE, corpus, args.files, skip)
        print(
            f"{made['files']:,} files ({made['bytes'] / 1e6:,.0f} MB) replicated from "
            f"{len(made['sources'])} sources in {time.perf_counter() - started:.1f} s; "
            f"left out as rejects by design: {', '.join(skip) or 'none'}"
        )
        for attempt in range(args.attempts):
            # interleaved, so load from elsewhere on the machine hits every step alike
            for step in measured:
                lake = work / f"lake-{attempt}" if step == "biofed" else None
                runs[step].append(measure(step, corpus, lake))
                if lake is not None:
                    shutil.rmtree(lake)
            print(f"  attempt {attempt + 1}/{args.attempts} done")

    files = made["files"]
    for step, step_runs in runs.items():
        for run in step_runs:
            if run["files"] != files:
                raise RuntimeError(f"{step} saw {run['files']} files, expected {files}")
            if run.get("instances", files) != files or run.get("rejected"):
                raise RuntimeError(
                    f"{step}: {run['instances']} instances and {run['rejected']} rejects from "
                    f"{files} files; the corpus should hold no rejects"
                )
            if run.get("failed_chunks"):
                raise RuntimeError(f"{step} failed on {run['failed_chunks']} chunks of files")
    top = {step: best(step_runs, files) for step, step_runs in runs.items()}
    rate = {step: top[step]["files_per_s"] for step in top}
    ratio = round(rate["biofed"] / rate["pydicom"], 3)
    dcmdump_ratio = round(rate["dcmdump"] / rate["pydicom"], 2) if dcmdump else None
    biofed = top["biofed"]
    hash_rate = sha256_mb_per_s()

    def line(label: str, step: str, extra: str = "") -> None:
        print(f"  {label:<52} {rate[step]:>7,.0f} files/s{extra}")

    line("pydicom.dcmread(stop_before_pixels), 1 process", "pydicom",
         f"  peak RSS {mib(top['pydicom']['peak_rss_bytes'])}")  # fmt: skip
    line("biofed DICOM -> Delta (ingest_batch)", "biofed",
         f"  peak RSS {mib(biofed['peak_rss_bytes'])} + {biofed['workers_sampled']} child "
         f"processes of up to {mib(biofed['worker_peak_rss_bytes'])} each")  # fmt: skip
    line("pydicom as above + sha256 of the whole file", "pydicom_sha256",
         f"  (biofed is {rate['biofed'] / rate['pydicom_sha256']:.2f}x this; sha256 runs at "
         f"{hash_rate:,.0f} MB/s here)")  # fmt: skip
    line("connector only (iter_dicom_batches), default pool", "connector")
    line("connector only, workers=1", "connector_1_worker")
    if dcmdump:
        for step, argv in DCMDUMP_ARGS.items():
            line(f"dcmdump {' '.join(argv)}", step, f"  ({rate[step] / rate['pydicom']:.1f}x "
                 "pydicom)")  # fmt: skip
    print(f"  ratio biofed / pydicom: {ratio:.2f} (bound {ACCEPTANCE['ratio']}, "
          f"target {TARGETS['ratio']})")  # fmt: skip

    checks = {"ratio_at_least_1.5": ratio >= ACCEPTANCE["ratio"]}
    judged = {
        "checks": checks,
        "acceptance": "meets acceptance" if all(checks.values()) else "fails acceptance",
        "meets_targets": ratio >= TARGETS["ratio"],
        "bound": ACCEPTANCE["ratio"],
        "target": TARGETS["ratio"],
    }
    results = {
        "benchmark": "dicom_ingest",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
        "corpus_bytes": made["bytes"],
        "pydicom_files_per_s": rate["pydicom"],
        "biofed_files_per_s": rate["biofed"],
        "ratio": ratio,
        "peak_rss_bytes": biofed["peak_rss_bytes"],
        "worker_peak_rss_bytes": biofed["worker_peak_rss_bytes"],
        "pydicom_sha256_files_per_s": rate["pydicom_sha256"],
        "ratio_to_pydicom_sha256": round(rate["biofed"] / rate["pydicom_sha256"], 3),
        "sha256_mb_per_s": hash_rate,
        "connector_files_per_s": rate["connector"],
        "connector_single_worker_files_per_s": rate["connector_1_worker"],
        "dcmdump_files_per_s": rate.get("dcmdump"),
        "dcmdump_ratio_to_pydicom": dcmdump_ratio,
        "dcmdump_text_files_per_s": rate.get("dcmdump_text"),
        "steps": top,
        "corpus": {
            "sources": made["sources"],
            "excluded_sources": made["excluded_sources"],
            "layout": "PAT<round//10>/ST<round>/SE<source>/IM<n>: one replica of every source "
            "per round, new SOP Instance UIDs, new Study/Series UIDs per round, transfer "
            "syntax, preamble and file meta kept, pixel data as read",
        },
        "verdict": judged,
        "method": {
            "pydicom": "for p in paths: pydicom.dcmread(p, stop_before_pixels=True, force=True) "
            "in one process; the paths are listed before the clock starts",
            "pydicom_sha256": "the same loop reading each whole file, hashing it with "
            "hashlib.sha256 and parsing the header from the bytes: the per-file work biofed "
            "also does (it records every file's sha256), in one process",
            "biofed": f"pipelines.imaging.ingest_batch(Lake(<empty>), corpus, {BATCH!r}, ...) "
            "end to end incl. the Delta write; ratio = biofed files/s / pydicom files/s",
            "connector": "connectors.dicom.iter_dicom_batches(corpus, on_error='quarantine') "
            "without the Delta write, default pool and workers=1",
            "dcmdump": {
                step: f"dcmdump {' '.join(argv)} <{DCMDUMP_CHUNK} files per call> > /dev/null, "
                "calls one after another"
                for step, argv in DCMDUMP_ARGS.items()
            }
            if dcmdump
            else "dcmdump not installed (Debian package dcmtk)",
            "timing": f"best of {args.attempts}, steps interleaved per attempt, each step in a "
            "fresh subprocess; the corpus is in the page cache (just written)",
            "peak_rss": "VmHWM of the step's own process; child processes (the connector's "
            f"pool) sampled from /proc every {SAMPLE_SECONDS} s",
        },
        "attempts": args.attempts,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "versions": {p: version(p) for p in ("pydicom", "polars", "deltalake")},
            "dcmdump": dcmdump_version() if dcmdump else None,
        },
        "script_seconds": round(time.perf_counter() - script_started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"verdict: {judged['acceptance']} ({checks}); target {TARGETS['ratio']} met: "
          f"{judged['meets_targets']}; {results['script_seconds']:.0f} s in all")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
