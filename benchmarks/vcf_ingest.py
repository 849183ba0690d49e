"""VCF -> Delta against ``bcftools query`` on the same file, and region queries through MCP.

For each size (1,000,000 and 4,000,000 records by default) the script writes a bgzipped,
tabix-indexed, 3-sample VCF (about 5% multi-allelic sites, some missing and phased
genotypes), then measures, each in a fresh subprocess so peak RSS is that step's own:

(a) ``bcftools query`` (bundled with pysam) extracting CHROM, POS, REF, ALT, QUAL, INFO/DP
    and every sample's GT to /dev/null;
(b) biofed's ingest of the same file into Delta: the streaming reader, bronze variants and
    genotypes (Delta-partitioned by chromosome, 64k-row groups), rejects and the file ledger,
    exactly as the bronze asset runs it.

It prints records/s for both, their ratio and biofed's peak RSS. On the 1M-record lake it then
builds silver and the ``variant_frequencies`` research view the way the pipeline does, starts
the real catalog server over stdio and times region queries (a 10 kb window around a random
variant, another one each call), client-side around ``call_tool``.

    python benchmarks/vcf_ingest.py [--sizes 1000000,4000000] [--repeats 2] [--calls 300]

Writes benchmarks/results/vcf_ingest.json.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import yaml
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

RESULTS = Path(__file__).resolve().parent / "results" / "vcf_ingest.json"
SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
sys.path.insert(0, str(REPO))

BCFTOOLS_FORMAT = "%CHROM\t%POS\t%REF\t%ALT\t%QUAL\t%INFO/DP[\t%GT]\n"
ESCAPED_FORMAT = BCFTOOLS_FORMAT.encode("unicode_escape").decode()
SAMPLES = 3
PROTOCOL = "BIOFED-DEMO-001"
POLICY_VERSION = "bench-vcf-1"
WINDOW = 10_000
WARMUP = 20
ACCEPTANCE = {"ratio": 0.5, "peak_rss_bytes": 1.5 * 2**30, "rss_growth": 0.25, "region_p50_ms": 20}
TARGETS = {"ratio": 0.8, "region_p50_ms": 10}


def peak_rss_bytes() -> int:
    """This process's peak resident set size since it exec'd: VmHWM of /proc/self/status.

    Not ``getrusage().ru_maxrss``: Linux carries that high-water mark across fork and exec,
    so a step started after the parent had built the served lake in memory reported the
    parent's peak (3.2 GB) instead of its own (1.1 GB).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- the measured steps, each run in its own subprocess ----------------------------------------


def run_bcftools(vcf: Path) -> dict[str, Any]:
    import pysam.bcftools

    started = time.perf_counter()
    pysam.bcftools.query("-f", BCFTOOLS_FORMAT, str(vcf), "-o", "/dev/null")
    return {"seconds": time.perf_counter() - started, "peak_rss_bytes": peak_rss_bytes()}


def run_biofed(vcf: Path, lake_root: Path) -> dict[str, Any]:
    from pipelines.genomics import ingest_vcf
    from pipelines.lake import Lake
    from pipelines.landing import landing_file

    landed = landing_file(vcf, vcf.parent)
    started = time.perf_counter()
    ingest = ingest_vcf(
        Lake(lake_root), landed, run_id="bench", ingested_at=datetime.now(UTC)
    )
    seconds = time.perf_counter() - started
    row = ingest.file_row.row(0, named=True)
    return {
        "seconds": seconds,
        "peak_rss_bytes": peak_rss_bytes(),
        "records": row["records"],
        "variants": row["variants"],
        "genotypes": row["genotypes"],
        "rejected": ingest.rejected,
    }


def measure(step: str, vcf: Path, lake_root: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, str(SCRIPT), "--step", step, "--vcf", str(vcf)]
    if lake_root is not None:
        command += ["--lake", str(lake_root)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the served lake -----------------------------------------------------------------------------


def build_served_lake(root: Path, vcf_name: str) -> dict[str, Any]:
    """Silver and the variant_frequencies view from the bronze tables, as the assets build
    them, plus a manifest, a policy (allele-count floor 1: three samples) and a dev key."""
    from mcp_catalog.auth import ensure_dev_key
    from mcp_catalog.catalog import TableState, build_manifest, dataset_entry
    from mcp_catalog.governance.deid import Pseudonyms
    from mcp_catalog.governance.genomics import GENOMIC_VIEWS
    from mcp_catalog.governance.views import ViewContext, build_view
    from mcp_catalog.manifest import RegionColumns, dump_manifest
    from mcp_catalog.policy import DEFAULT_POLICY_PATH, load_policy
    from pipelines.genomics import SILVER_GENOTYPES_PATH, SILVER_VARIANTS_PATH, build_silver
    from pipelines.lake import Lake, lookup_writer_properties

    lake = Lake(root)
    samples = lake.read("bronze/genomics/vcf_files").item(0, "samples").to_list()
    people = [f"person-{i}" for i in range(len(samples))]
    links = pl.DataFrame({"sample_id": samples, "person_key": people})
    started = time.perf_counter()
    build_silver(lake, vcf_name, links, run_id="bench", built_at=datetime.now(UTC))
    silver_seconds = time.perf_counter() - started
    (spec,) = [v for v in GENOMIC_VIEWS if v.name == "variant_frequencies"]
    ctx = ViewContext(
        pseudonyms=Pseudonyms(key=b"bench-key-0123456789abcdef012345"),
        shifts=pl.DataFrame(schema={"person_key": pl.String(), "shift_days": pl.Int64()}),
        consented=pl.Series("person_key", people),
        reference_date=datetime.now(UTC).date(),
    )
    started = time.perf_counter()
    view = build_view(
        spec,
        {SILVER_VARIANTS_PATH: lake.read(SILVER_VARIANTS_PATH),
         SILVER_GENOTYPES_PATH: lake.read(SILVER_GENOTYPES_PATH)},
        ctx,
    )
    lake.replace_table(
        spec.path, view, run_id="bench", writer_properties=lookup_writer_properties()
    )
    gold_seconds = time.perf_counter() - started
    table = lake.table(spec.path)
    assert table is not None
    document = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    document = {k: v for k, v in document.items() if not k.startswith("x-")}
    document["version"] = POLICY_VERSION
    document["limits"] = {**document["limits"], "rate_per_minute": 1_000_000, "burst": 100_000}
    rules = document["datasets"][f"{spec.audience}/{spec.name}"]
    rules["suppress_below"] = {"allele_count": 1}
    document["datasets"] = {f"{spec.audience}/{spec.name}": rules}
    (root / "policy.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    policy = load_policy(root / "policy.yaml")
    now = datetime.now(UTC)
    chrom, start, end = spec.region
    entry = dataset_entry(
        spec,
        TableState(row_count=view.height, delta_version=table.version(), last_materialized=now),
        region=RegionColumns(chrom=chrom, start=start, end=end),
    )
    manifest = build_manifest([entry], generated_at=now, policy=policy)
    (root / "_catalog").mkdir(parents=True, exist_ok=True)
    (root / "_catalog" / "manifest.json").write_text(dump_manifest(manifest))
    config = root / "server.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "policy": str(root / "policy.yaml"),
                "stdio": {
                    "principal": "bench-researcher",
                    "role": "researcher",
                    "purpose": "research",
                    "protocol": PROTOCOL,
                },
            }
        )
    )
    ensure_dev_key(root)
    row_groups = sum(
        pq.ParquetFile(f.removeprefix("file://")).metadata.num_row_groups
        for f in table.file_uris()
    )
    return {
        "rows": view.height,
        "row_groups": row_groups,
        "silver_seconds": round(silver_seconds, 2),
        "gold_seconds": round(gold_seconds, 2),
        "config": str(config),
        "sites": view.select("chrom", "pos").sample(2_000, seed=3, with_replacement=True),
    }


async def region_latency(root: Path, config: str, sites: pl.DataFrame, calls: int) -> dict:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_catalog.serve", "--lake", str(root), "--config", config,
              "--accept-contract"],
        cwd=str(REPO),
        env={k: v for k, v in os.environ.items() if k != "OPENLINEAGE_URL"},
    )  # fmt: skip
    samples, rows = [], []
    chosen = iter(sites.iter_rows())
    with (root / "server.log").open("a") as log:
        async with Client(stdio_client(parameters, errlog=log), read_timeout_seconds=60) as client:
            for index in range(WARMUP + calls):
                chrom, pos = next(chosen)
                arguments = {
                    "region": {
                        "chrom": chrom,
                        "start": max(1, pos - WINDOW // 2),
                        "end": pos + WINDOW // 2,
                    },
                    "limit": 100,
                }
                started = time.perf_counter()
                result = await client.call_tool("query_variant_frequencies", arguments)
                elapsed = (time.perf_counter() - started) * 1000
                if result.is_error:
                    raise RuntimeError(f"region query failed: {result.content[0].text}")
                if index >= WARMUP:
                    samples.append(elapsed)
                    rows.append(result.structured_content["row_count"])
    return {
        "region_p50_ms": round(float(np.percentile(samples, 50)), 3),
        "region_p99_ms": round(float(np.percentile(samples, 99)), 3),
        "rows_per_call_mean": round(float(np.mean(rows)), 1),
        "calls": calls,
        "window_bp": WINDOW,
    }


# -- the run -------------------------------------------------------------------------------------


def one_size(records: int, repeats: int, work: Path, calls: int | None) -> dict[str, Any]:
    from connectors.synth.vcf_bench import write_benchmark_vcf

    vcf = work / f"bench-{records}.vcf.gz"
    started = time.perf_counter()
    write_benchmark_vcf(vcf, records=records, samples=SAMPLES, seed=1)
    print(f"{records:,} records written in {time.perf_counter() - started:.1f} s "
          f"({vcf.stat().st_size / 1e6:.0f} MB bgzipped)")  # fmt: skip
    bcftools = [measure("bcftools", vcf) for _ in range(repeats)]
    biofed = []
    for attempt in range(repeats):
        lake_root = work / f"lake-{records}-{attempt}"
        biofed.append(measure("biofed", vcf, lake_root))
    best_b = min(bcftools, key=lambda r: r["seconds"])
    best_o = min(biofed, key=lambda r: r["seconds"])
    assert best_o["records"] == records, best_o
    entry: dict[str, Any] = {
        "records": records,
        "variants": best_o["variants"],
        "genotypes": best_o["genotypes"],
        "bcftools_seconds": round(best_b["seconds"], 3),
        "biofed_seconds": round(best_o["seconds"], 3),
        "bcftools_records_per_s": round(records / best_b["seconds"]),
        "biofed_records_per_s": round(records / best_o["seconds"]),
        "ratio": round(best_b["seconds"] / best_o["seconds"], 3),
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in biofed),
        "bcftools_peak_rss_bytes": max(r["peak_rss_bytes"] for r in bcftools),
        "all_biofed_seconds": [round(r["seconds"], 3) for r in biofed],
        "all_bcftools_seconds": [round(r["seconds"], 3) for r in bcftools],
    }
    print(
        f"  bcftools query {entry['bcftools_records_per_s']:>9,} records/s | biofed -> Delta "
        f"{entry['biofed_records_per_s']:>9,} records/s | ratio {entry['ratio']:.2f} | biofed "
        f"peak RSS {entry['peak_rss_bytes'] / 2**20:.0f} MiB"
    )
    if calls:
        lake_root = work / f"lake-{records}-0"
        served = build_served_lake(lake_root, vcf.name)
        sites = served.pop("sites")
        config = served.pop("config")
        region = anyio.run(region_latency, lake_root, config, sites, calls)
        entry["region_query"] = {**region, "view": served}
        print(
            f"  region query through MCP (stdio, {WINDOW // 1000} kb window, "
            f"{region['rows_per_call_mean']} rows/call): p50 {region['region_p50_ms']} ms, "
            f"p99 {region['region_p99_ms']} ms on {served['rows']:,} variants in "
            f"{served['row_groups']} row groups"
        )
    for path in work.glob(f"lake-{records}-*"):
        subprocess.run(["rm", "-rf", str(path)], check=True)
    vcf.unlink()
    return entry


def verdict(sizes: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [s["ratio"] for s in sizes]
    rss = [s["peak_rss_bytes"] for s in sizes]
    growth = (rss[-1] - rss[0]) / rss[0] if len(rss) > 1 else 0.0
    region = next((s["region_query"] for s in sizes if "region_query" in s), None)
    checks = {
        "ratio_at_least_0.5": min(ratios) >= ACCEPTANCE["ratio"],
        "peak_rss_under_1.5_GiB": max(rss) < ACCEPTANCE["peak_rss_bytes"],
        "rss_growth_under_25%": growth < ACCEPTANCE["rss_growth"],
        "region_p50_under_20_ms": region is not None
        and region["region_p50_ms"] < ACCEPTANCE["region_p50_ms"],
    }
    return {
        "checks": checks,
        "acceptance": "meets acceptance" if all(checks.values()) else "fails acceptance",
        "meets_targets": min(ratios) >= TARGETS["ratio"]
        and region is not None
        and region["region_p50_ms"] <= TARGETS["region_p50_ms"],
        "rss_growth": round(growth, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,4000000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--vcf", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--lake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step == "bcftools":
        print(json.dumps(run_bcftools(args.vcf)))
        return
    if args.step == "biofed":
        print(json.dumps(run_biofed(args.vcf, args.lake)))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        entries = [
            one_size(records, args.repeats, Path(tmp), args.calls if index == 0 else None)
            for index, records in enumerate(sizes)
        ]
    judged = verdict(entries)
    results = {
        "benchmark": "vcf_ingest",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": entries,
        "verdict": judged,
        "method": {
            "bcftools": f"pysam.bcftools.query -f '{ESCAPED_FORMAT}' -o /dev/null, in a fresh "
            "subprocess",
            "biofed": "pipelines.genomics.ingest_vcf (reader + bronze variants and genotypes, "
            "rejects, ledger) into an empty lake, in a fresh subprocess",
            "timing": f"best of {args.repeats}; peak RSS is VmHWM of the step's subprocess",
            "samples": SAMPLES,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before],
            "versions": {p: version(p) for p in ("polars", "deltalake", "pysam", "mcp")},
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"verdict: {judged['acceptance']} ({judged['checks']}); targets met: "
          f"{judged['meets_targets']}; RSS growth {judged['rss_growth']:.1%}")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
