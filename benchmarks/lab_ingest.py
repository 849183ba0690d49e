"""Lab feeds -> lab_results: biofed's HL7 v2 and LIS CSV readers against python-hl7 and polars.

The inputs are made from ``connectors.synth.write_lab`` for ``--people`` people (2,000 by
default), replicated, in a temporary folder:

- an HL7 v2 ORU^R01 feed of about ``--obx`` OBX segments (100,000 by default, about 30 MB):
  every message of the three synthetic HL7 sites (MLLP-framed, CR- and LF-separated) is put
  in one CR-separated file, one CR after each message, round after round until the feed
  holds enough OBX; from the second round on each message's MSH-10 gets a suffix
  (``<MSH-10>.R<round>``), so every message id is unique. The synthetic feed's one
  malformed message comes once per round (one OBX quarantined each time);
- per CSV site (SITE-A01: comma, UTF-8; SITE-B07: semicolon, cp1252, CRLF) one LIS export of
  about ``--csv-rows`` data rows (300,000 by default): the data rows of the site's two
  synthetic exports, round after round, written as the synthetic writer writes them, with
  the accession suffixed ``-R<round>`` from the second round on;
- a bronze frame of about ``--conform-rows`` rows (400,000 by default), read once and
  untimed by ``pipelines.lab.read_bronze`` from a landing folder holding the HL7 feed and,
  per CSV site, the first (conform rows - OBX) / 2 data rows of its export.

Then, each in a fresh subprocess (peak RSS is that step's own VmHWM), steps interleaved per
attempt, best of ``--attempts``:

(1) HL7. biofed: ``read_hl7v2(feed, on_error="quarantine")``, parse to the typed
    ``lab_results`` and ``messages`` frames. Reference, python-hl7: decode the file, split it
    into messages (``hl7.split_file``), ``hl7.parse`` each and pull per OBX into Python lists
    OBX-3.1, OBX-5, OBX-6, OBX-7, OBX-8, OBX-11, OBR-3.1 and OBR-7.1 of its OBR
    (``extract_field`` for components, which decodes escapes; the whole field's text for
    OBX-5 to OBX-8, OBX-5 unescaped when it holds the escape character), with the garbage
    collector off as biofed's reader has it. Figure: OBX/s, biofed / python-hl7.
(2) CSV, per site. biofed: ``read_lab_csv(export, site=<SITE>, on_error="quarantine")``.
    Reference: ``polars.read_csv`` of the same file with the site's separator and encoding,
    every column a string (``infer_schema=False``): parse only. Figure: rows/s, biofed /
    polars.
(3) Conform. ``conform_lab_results`` on the bronze frame (read from Parquet before the clock
    starts). No reference tool does this (LOINC mapping per site, UCUM conversion): its rows/s
    is an absolute figure; the floor is one ``join`` of the same frame against the analyte
    table on ``test_code`` (left, order kept): 1 / (conform / floor) is how many such joins
    conform costs. Both steps' peak RSS includes the bronze frame they load.

Steps ``startup_*`` only import a tool (biofed's lab modules with polars, python-hl7, polars):
their peak RSS is the part of a step's peak that the interpreter and libraries take, and is
subtracted to give each step's peak above its imports.

Ratios are the figures that matter: absolute rates move with the machine and its load
(recorded in the results). No acceptance bound is set yet.

    python benchmarks/lab_ingest.py [--people 2000] [--obx 100000] [--csv-rows 300000]
                                    [--conform-rows 400000] [--attempts 3]

Writes benchmarks/results/lab_ingest.json.
"""

import argparse
import csv
import io
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "lab_ingest.json"
SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
sys.path.insert(0, str(REPO))

SEED = 1
FEED = "feed.hl7"
BRONZE = "bronze.parquet"
CSV_SITES = {
    # site: (file name, separator, encoding for polars.read_csv, csv.writer line terminator)
    "SITE-A01": ("lis_export.csv", ",", "utf8", "\n"),
    "SITE-B07": ("LABEXPORT.csv", ";", "cp1252", "\r\n"),
}
CSV_ENCODINGS = {"SITE-A01": "utf-8", "SITE-B07": "cp1252"}
ACCESSION_COLUMN = 1  # ACCESSION at SITE-A01, SpecimenNo at SITE-B07
MLLP = re.compile(rb"[\x0b\x1c]")
BOM = "\ufeff"


def peak_rss_bytes() -> int:
    """This process's peak resident set size since it exec'd: VmHWM of /proc/self/status.

    Not ``getrusage().ru_maxrss``: Linux carries that high-water mark across fork and exec,
    so a step would report the larger peak of the parent that built the inputs.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- the inputs -----------------------------------------------------------------------------------


def source_messages(hl7_folder: Path) -> list[list[str]]:
    """Every message of the synthetic HL7 files, as segment texts, in file order."""
    messages: list[list[str]] = []
    for path in sorted(hl7_folder.glob("*.hl7")):
        text = MLLP.sub(b"", path.read_bytes()).decode("utf-8").replace(BOM, "")
        for segment in re.split(r"\r\n|\r|\n", text):
            if not segment.strip():
                continue
            if segment.startswith("MSH"):
                messages.append([segment])
            else:
                messages[-1].append(segment)
    return messages


def with_control_id(segments: list[str], suffix: str) -> list[str]:
    """The message with ``suffix`` appended to MSH-10 (MSH's ninth field after MSH-1)."""
    msh = segments[0]
    separator = msh[3]
    fields = msh.split(separator)
    fields[9] += suffix
    return [separator.join(fields), *segments[1:]]


def build_feed(messages: list[list[str]], out: Path, obx: int) -> dict[str, Any]:
    """Write the messages round after round until the feed holds at least ``obx`` OBX."""
    per_message = [sum(s.startswith("OBX") for s in m) for m in messages]
    chunks: list[str] = []
    written = count = rounds = 0
    while count < obx:
        suffix = f".R{rounds}" if rounds else ""
        for segments, observations in zip(messages, per_message, strict=True):
            chunks.append("\r".join(with_control_id(segments, suffix)) + "\r")
            written += 1
            count += observations
            if count >= obx:
                break
        rounds += 1
    data = "".join(chunks).encode("utf-8")
    out.write_bytes(data)
    return {"bytes": len(data), "messages": written, "obx": count, "rounds": rounds}


def build_export(site: str, sources: list[Path], out: Path, rows: int) -> dict[str, Any]:
    """Write one export of at least ``rows`` data rows from the site's synthetic exports."""
    _, separator, _, terminator = CSV_SITES[site]
    encoding = CSV_ENCODINGS[site]
    header: list[str] = []
    records: list[list[str]] = []
    for path in sources:
        reader = csv.reader(io.StringIO(path.read_bytes().decode(encoding), newline=""),
                            delimiter=separator)  # fmt: skip
        header = next(reader)
        records += list(reader)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator, lineterminator=terminator)
    writer.writerow(header)
    written = rounds = 0
    while written < rows:
        for record in records[: rows - written]:
            if rounds:
                record = list(record)
                record[ACCESSION_COLUMN] += f"-R{rounds}"
            writer.writerow(record)
        written += min(len(records), rows - written)
        rounds += 1
    data = buffer.getvalue().encode(encoding)
    out.write_bytes(data)
    return {"bytes": len(data), "rows": written, "rounds": rounds, "source_rows": len(records)}


def head_of_export(export: Path, out: Path, rows: int) -> None:
    """The header and the first ``rows`` data lines of an export (its rows hold no line break)."""
    data = export.read_bytes()
    end = -1
    for _ in range(rows + 1):
        end = data.index(b"\n", end + 1)
    out.write_bytes(data[: end + 1])


def build_inputs(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from connectors.synth import build_people, write_lab
    from connectors.synth.lab import CSV_FILES

    started = time.perf_counter()
    synth = work / "synth"
    counts = write_lab(build_people(args.people, seed=SEED), synth)
    synth_seconds = time.perf_counter() - started
    made: dict[str, Any] = {
        "people": args.people,
        "seed": SEED,
        "synthetic_records": {k: v for k, v in counts.items() if not k.endswith("index.csv")},
        "synth_seconds": round(synth_seconds, 1),
    }
    made["hl7"] = build_feed(source_messages(synth / "lab" / "hl7"), work / FEED, args.obx)
    made["csv"] = {}
    for site, (name, *_) in CSV_SITES.items():
        sources = [synth / "lab" / "csv" / site / file for file in CSV_FILES[site]]
        made["csv"][site] = build_export(site, sources, work / name, args.csv_rows)

    # the landing folder conform's bronze frame is read from, as the pipeline lands files
    landing = work / "landing" / "lab"
    (landing / "hl7").mkdir(parents=True)
    os.link(work / FEED, landing / "hl7" / FEED)
    per_site = max(0, args.conform_rows - made["hl7"]["obx"]) // len(CSV_SITES)
    for site, (name, *_) in CSV_SITES.items():
        (landing / "csv" / site).mkdir(parents=True)
        head_of_export(work / name, landing / "csv" / site / name, per_site)
    made["conform_csv_rows_per_site"] = per_site
    made["seconds"] = round(time.perf_counter() - started, 1)
    return made


def run_bronze(work: Path) -> dict[str, Any]:
    """Setup, untimed in the figures: bronze rows as ``pipelines.lab.read_bronze`` reads them."""
    from pipelines.lab import read_bronze, scan_landing

    landing = work / "landing" / "lab"
    started = time.perf_counter()
    batch = read_bronze(scan_landing(landing), landing, ingested_at=datetime.now(UTC))
    seconds = time.perf_counter() - started
    results = batch.tables["results"]
    results.write_parquet(work / BRONZE)
    return {
        "seconds": seconds,
        "rows": results.height,
        "rejects": batch.rejects.height,
        "by_source_kind": dict(results.group_by("source_kind").len().sort("source_kind").rows()),
        "peak_rss_bytes": peak_rss_bytes(),
    }


# -- the measured steps, each run in its own subprocess --------------------------------------------


def run_startup_biofed() -> dict[str, Any]:
    import polars  # noqa: F401

    import connectors.hl7v2  # noqa: F401
    import connectors.lab_csv  # noqa: F401
    import connectors.terminology  # noqa: F401

    return {"seconds": 0.0, "peak_rss_bytes": peak_rss_bytes()}


def run_startup_python_hl7() -> dict[str, Any]:
    import hl7  # noqa: F401

    return {"seconds": 0.0, "peak_rss_bytes": peak_rss_bytes()}


def run_startup_polars() -> dict[str, Any]:
    import polars  # noqa: F401

    return {"seconds": 0.0, "peak_rss_bytes": peak_rss_bytes()}


def run_hl7_biofed(work: Path) -> dict[str, Any]:
    from connectors.hl7v2 import read_hl7v2

    started = time.perf_counter()
    result = read_hl7v2(work / FEED, on_error="quarantine")
    seconds = time.perf_counter() - started
    messages = result.tables["messages"]
    return {
        "seconds": seconds,
        "rows": result.tables["lab_results"].height,
        "messages": messages.height,
        "obx": int(messages["results"].sum() + messages["rejected_results"].sum()),
        "rejects": result.rejects.height,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_hl7_reference(work: Path) -> dict[str, Any]:
    import gc

    import hl7

    path = work / FEED
    gc.disable()
    started = time.perf_counter()
    text = path.read_bytes().decode("utf-8")
    columns: list[list[str | None]] = [[] for _ in range(8)]
    (obx_3_1, obx_5, obx_6, obx_7, obx_8, obx_11, obr_3_1, obr_7_1) = columns
    messages = 0
    for raw in hl7.split_file(text):
        message = hl7.parse(raw)
        messages += 1
        obr = None
        for segment in message:
            segment_id = segment[0][0]
            if segment_id == "OBR":
                obr = segment
            elif segment_id == "OBX":
                width = len(segment)
                value = str(segment(5)) if width > 5 else ""
                if "\\" in value:
                    value = message.unescape(value)
                obx_3_1.append(segment.extract_field(field_num=3, component_num=1))
                obx_5.append(value)
                obx_6.append(str(segment(6)) if width > 6 else "")
                obx_7.append(str(segment(7)) if width > 7 else "")
                obx_8.append(str(segment(8)) if width > 8 else "")
                obx_11.append(segment.extract_field(field_num=11))
                obr_3_1.append(obr.extract_field(field_num=3) if obr is not None else None)
                obr_7_1.append(obr.extract_field(field_num=7) if obr is not None else None)
    seconds = time.perf_counter() - started
    gc.enable()
    return {
        "seconds": seconds,
        "messages": messages,
        "obx": len(obx_3_1),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_csv_biofed(work: Path, site: str) -> dict[str, Any]:
    from connectors.lab_csv import read_lab_csv

    name = CSV_SITES[site][0]
    started = time.perf_counter()
    result = read_lab_csv(work / name, site=site, on_error="quarantine")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": result.tables["lab_results"].height,
        "rejects": result.rejects.height,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_csv_polars(work: Path, site: str) -> dict[str, Any]:
    import polars as pl

    name, separator, encoding, _ = CSV_SITES[site]
    started = time.perf_counter()
    frame = pl.read_csv(work / name, separator=separator, encoding=encoding, infer_schema=False)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": frame.height,
        "columns": frame.width,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_conform(work: Path) -> dict[str, Any]:
    import polars as pl

    from connectors.terminology import conform_lab_results

    bronze = pl.read_parquet(work / BRONZE)
    started = time.perf_counter()
    conformed = conform_lab_results(bronze)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": conformed.height,
        "mapping_status": dict(conformed["mapping_status"].value_counts(sort=True).rows()),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def run_join_floor(work: Path) -> dict[str, Any]:
    import polars as pl

    from connectors.terminology import analytes_frame

    bronze = pl.read_parquet(work / BRONZE)
    analytes = analytes_frame()
    started = time.perf_counter()
    joined = bronze.join(
        analytes, left_on="test_code", right_on="loinc", how="left", maintain_order="left"
    )
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": joined.height, "peak_rss_bytes": peak_rss_bytes()}


STARTUP = {
    "hl7_biofed": "startup_biofed",
    "hl7_python_hl7": "startup_python_hl7",
    **{f"csv_biofed_{site}": "startup_biofed" for site in CSV_SITES},
    **{f"csv_polars_{site}": "startup_polars" for site in CSV_SITES},
    "conform": "startup_biofed",
    "join_floor": "startup_biofed",
}
"""The step whose peak RSS is each measured step's imports alone."""

STEPS = {
    "startup_biofed": lambda work: run_startup_biofed(),
    "startup_python_hl7": lambda work: run_startup_python_hl7(),
    "startup_polars": lambda work: run_startup_polars(),
    "hl7_biofed": run_hl7_biofed,
    "hl7_python_hl7": run_hl7_reference,
    **{f"csv_biofed_{site}": (lambda work, s=site: run_csv_biofed(work, s)) for site in CSV_SITES},
    **{f"csv_polars_{site}": (lambda work, s=site: run_csv_polars(work, s)) for site in CSV_SITES},
    "conform": run_conform,
    "join_floor": run_join_floor,
}


def measure(step: str, work: Path) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--step", step, "--work", str(work)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the run ---------------------------------------------------------------------------------------


def best(runs: list[dict[str, Any]], units: int) -> dict[str, Any]:
    """The fastest run, its rate, every run's time and the largest peak RSS of the runs."""
    top = min(runs, key=lambda r: r["seconds"])
    seconds = [r["seconds"] for r in runs]
    rates = [units / s for s in seconds if s > 0]
    return {
        **top,
        "seconds": round(top["seconds"], 4),
        "per_s": round(units / top["seconds"]) if top["seconds"] > 0 else None,
        "all_seconds": [round(s, 4) for s in seconds],
        # (slowest rate - fastest rate) / fastest rate, over the attempts
        "spread": round((max(rates) - min(rates)) / max(rates), 3) if rates else None,
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
    }


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--obx", type=int, default=100_000)
    parser.add_argument("--csv-rows", type=int, default=300_000)
    parser.add_argument("--conform-rows", type=int, default=400_000)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        step = run_bronze if args.step == "bronze" else STEPS[args.step]
        print(json.dumps(step(args.work)))
        return

    script_started = time.perf_counter()
    load_before = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="biofed-lab-bench-") as tmp:
        work = Path(tmp)
        made = build_inputs(work, args)
        bronze = measure("bronze", work)
        made["bronze"] = bronze
        hl7_in = made["hl7"]
        print(
            f"inputs from {args.people:,} synthetic people in {made['seconds']:.0f} s: HL7 feed "
            f"{hl7_in['obx']:,} OBX in {hl7_in['messages']:,} messages "
            f"({hl7_in['bytes'] / 1e6:.1f} MB, {hl7_in['rounds']} rounds); "
            + "; ".join(
                f"{site} {c['rows']:,} rows ({c['bytes'] / 1e6:.1f} MB)"
                for site, c in made["csv"].items()
            )
            + f"; bronze {bronze['rows']:,} rows (read_bronze {bronze['seconds']:.1f} s)"
        )
        for attempt in range(args.attempts):
            # interleaved, so load from elsewhere on the machine hits every step alike
            for step in STEPS:
                runs[step].append(measure(step, work))
            print(f"  attempt {attempt + 1}/{args.attempts} done")

    obx = hl7_in["obx"]
    for run in runs["hl7_biofed"]:
        check(run["obx"] == obx and run["messages"] == hl7_in["messages"],
              f"biofed read {run['obx']} OBX in {run['messages']} messages, expected {obx} "
              f"in {hl7_in['messages']}")  # fmt: skip
    for run in runs["hl7_python_hl7"]:
        check(run["obx"] == obx, f"python-hl7 pulled {run['obx']} OBX, expected {obx}")
    for site, made_csv in made["csv"].items():
        for run in runs[f"csv_biofed_{site}"]:
            check(run["rows"] + run["rejects"] == made_csv["rows"],
                  f"{site}: biofed kept {run['rows']} and rejected {run['rejects']} of "
                  f"{made_csv['rows']} rows")  # fmt: skip
        for run in runs[f"csv_polars_{site}"]:
            check(run["rows"] == made_csv["rows"], f"{site}: polars read {run['rows']} rows")
    for step in ("conform", "join_floor"):
        for run in runs[step]:
            check(run["rows"] == bronze["rows"], f"{step} returned {run['rows']} rows")

    units = {
        "hl7_biofed": obx,
        "hl7_python_hl7": obx,
        **{f"csv_{tool}_{site}": made["csv"][site]["rows"]
           for site in CSV_SITES for tool in ("biofed", "polars")},
        "conform": bronze["rows"],
        "join_floor": bronze["rows"],
    }  # fmt: skip
    top = {step: best(step_runs, units.get(step, 1)) for step, step_runs in runs.items()}
    for step in set(STARTUP.values()):
        for key in ("per_s", "seconds", "all_seconds", "spread"):
            top[step].pop(key)
    rate = {step: top[step].get("per_s") for step in top}

    def ratio(numerator: str, denominator: str) -> float:
        return round(rate[numerator] / rate[denominator], 3)

    def per_attempt(numerator: str, denominator: str) -> list[float]:
        """The ratio within each attempt: the two steps ran one after the other."""
        return [round(d["seconds"] / n["seconds"], 3)
                for n, d in zip(runs[numerator], runs[denominator], strict=True)]  # fmt: skip

    def rss(step: str) -> dict[str, int]:
        """Peak RSS of a step, and above that of its tool's bare imports."""
        peak = top[step]["peak_rss_bytes"]
        return {"peak_rss_bytes": peak,
                "above_startup_bytes": peak - top[STARTUP[step]]["peak_rss_bytes"]}  # fmt: skip

    figures: dict[str, Any] = {
        "hl7": {
            "obx": obx,
            "biofed_obx_per_s": rate["hl7_biofed"],
            "python_hl7_obx_per_s": rate["hl7_python_hl7"],
            "ratio_biofed_to_python_hl7": ratio("hl7_biofed", "hl7_python_hl7"),
            "ratio_per_attempt": per_attempt("hl7_biofed", "hl7_python_hl7"),
            "biofed_rss": rss("hl7_biofed"),
            "python_hl7_rss": rss("hl7_python_hl7"),
            "biofed_rejects": top["hl7_biofed"]["rejects"],
        },
        "csv": {
            site: {
                "rows": made["csv"][site]["rows"],
                "biofed_rows_per_s": rate[f"csv_biofed_{site}"],
                "polars_read_csv_rows_per_s": rate[f"csv_polars_{site}"],
                "ratio_biofed_to_polars": ratio(f"csv_biofed_{site}", f"csv_polars_{site}"),
                "ratio_per_attempt": per_attempt(f"csv_biofed_{site}", f"csv_polars_{site}"),
                "biofed_rss": rss(f"csv_biofed_{site}"),
                "polars_rss": rss(f"csv_polars_{site}"),
                "biofed_rejects": top[f"csv_biofed_{site}"]["rejects"],
            }
            for site in CSV_SITES
        },
        "conform": {
            "rows": bronze["rows"],
            "rows_per_s": rate["conform"],
            "reference_tool": None,
            "join_floor_rows_per_s": rate["join_floor"],
            "ratio_conform_to_join_floor": ratio("conform", "join_floor"),
            "ratio_per_attempt": per_attempt("conform", "join_floor"),
            "conform_rss": rss("conform"),
            "join_floor_rss": rss("join_floor"),
        },
        "startup_peak_rss_bytes": {
            step: top[step]["peak_rss_bytes"] for step in sorted(set(STARTUP.values()))
        },
    }

    print(f"  {'step':<44} {'best rate':>16} {'peak RSS (above imports)':>25} {'spread':>7}")

    def line(label: str, step: str, unit: str) -> None:
        peak, above = rss(step).values()
        print(f"  {label:<44} {rate[step]:>10,} {unit:<5} {mib(peak):>10} ({mib(above):>8}) "
              f"{top[step]['spread']:>10.0%}")  # fmt: skip

    def note(figure: dict[str, Any], key: str, text: str) -> None:
        print(f"  {'':<44} {text} = {figure[key]:.3f}; per attempt {figure['ratio_per_attempt']}")

    line("HL7  biofed read_hl7v2 (quarantine)", "hl7_biofed", "OBX/s")
    line("HL7  python-hl7 parse + 8 fields per OBX", "hl7_python_hl7", "OBX/s")
    note(figures["hl7"], "ratio_biofed_to_python_hl7", "ratio biofed / python-hl7 (higher: better)")
    for site in CSV_SITES:
        line(f"CSV  {site} biofed read_lab_csv", f"csv_biofed_{site}", "row/s")
        line(f"CSV  {site} polars.read_csv (all strings)", f"csv_polars_{site}", "row/s")
        site_figure = figures["csv"][site]
        note(site_figure, "ratio_biofed_to_polars", "ratio biofed / polars (higher: better)")
    line("conform_lab_results (absolute: no reference)", "conform", "row/s")
    line("floor: one left join on the analyte table", "join_floor", "row/s")
    note(figures["conform"], "ratio_conform_to_join_floor", "conform / join floor (a floor)")
    print("  peak RSS above imports: minus the step tool's bare imports ("
          + ", ".join(f"{step.removeprefix('startup_')} {mib(value)}"
                      for step, value in figures["startup_peak_rss_bytes"].items())
          + "); spread: (fastest - slowest) / fastest rate over the attempts")  # fmt: skip

    results = {
        "benchmark": "lab_ingest",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "inputs": made,
        "steps": top,
        "method": {
            "inputs": "connectors.synth.write_lab for --people people (seed 1), replicated: see "
            "the module docstring",
            "hl7_biofed": "connectors.hl7v2.read_hl7v2(feed, on_error='quarantine'), to the "
            "typed lab_results and messages frames",
            "hl7_python_hl7": "decode, hl7.split_file, hl7.parse per message, per OBX into "
            "Python lists: OBX-3.1, OBX-5 (text, unescaped when it holds '\\'), OBX-6, OBX-7, "
            "OBX-8 (field text), OBX-11, OBR-3.1, OBR-7.1 (extract_field); gc disabled as in "
            "read_hl7v2",
            "csv_biofed": "connectors.lab_csv.read_lab_csv(export, site=<SITE>, "
            "on_error='quarantine')",
            "csv_polars": "polars.read_csv(export, separator=<site's>, encoding=<site's>, "
            "infer_schema=False): parse only, every column a string",
            "conform": "connectors.terminology.conform_lab_results(bronze) on the frame "
            "pipelines.lab.read_bronze read from the HL7 feed and the heads of both CSV "
            "exports (loaded from Parquet before the clock starts); no reference tool exists",
            "join_floor": "bronze.join(analytes_frame(), left_on='test_code', "
            "right_on='loinc', how='left', maintain_order='left')",
            "ratios": "rate of biofed / rate of the reference on the same input in the same "
            "run, from each step's best attempt: higher is better; conform / join floor is "
            "below 1 by construction; ratio_per_attempt pairs the two steps of each attempt, "
            "which ran one after the other",
            "timing": f"best of {args.attempts}, steps interleaved per attempt, each step in a "
            "fresh subprocess, imports and input loading outside the clock; the inputs are in "
            "the page cache (just written)",
            "peak_rss": "VmHWM of the step's own process, which includes the interpreter and "
            "libraries; above_startup_bytes subtracts the VmHWM of a process that only imports "
            "the step's tool (startup_* steps)",
        },
        "attempts": args.attempts,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.machine(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "versions": {p: version(p) for p in ("polars", "pyarrow", "hl7")},
        },
        "script_seconds": round(time.perf_counter() - script_started, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['script_seconds']:.0f} s in all; load {load_before[0]:.2f} before, "
          f"{results['machine']['load_after'][0]:.2f} after; wrote {RESULTS}")  # fmt: skip


if __name__ == "__main__":
    main()
