"""FHIR bulk NDJSON -> typed tables: biofed's reader against pyarrow's JSON reader.

pyarrow.json is the fastest general reader of NDJSON into Arrow on this stack; it only
parses (nested structs, inferred types), while biofed also types every field, resolves
references, keeps the resource JSON and checks each record. The figure that matters is the
ratio, measured on the same files in the same run.

    python benchmarks/fhir_ingest.py [--patients 2000]

Prints the figures and writes them to benchmarks/results/fhir_ingest.json.
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import pyarrow.json as pj

from connectors.fhir import read_fhir
from connectors.synth import write_cohort

RESULTS = Path(__file__).resolve().parent / "results" / "fhir_ingest.json"


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        summary = write_cohort(Path(tmp), patients=args.patients, seed=1)
        folder = Path(tmp) / "ehr"
        files = sorted(folder.glob("*.ndjson"))
        megabytes = sum(f.stat().st_size for f in files) / 1e6

        biofed_s, result = best_of(args.repeats, lambda: read_fhir(folder, on_error="quarantine"))
        resources = sum(t.height for t in result.tables.values())
        assert result.rejects.height == 0 and resources == sum(summary.files.values())

        def pyarrow_read() -> int:
            return sum(pj.read_json(f).num_rows for f in files)

        reference_s, reference_rows = best_of(args.repeats, pyarrow_read)
        assert reference_rows == resources

    figures = {
        "patients": args.patients,
        "resources": resources,
        "megabytes": round(megabytes, 1),
        "biofed_read_fhir_s": round(biofed_s, 3),
        "biofed_resources_per_s": round(resources / biofed_s),
        "pyarrow_json_s": round(reference_s, 3),
        "pyarrow_resources_per_s": round(resources / reference_s),
        "ratio_biofed_to_pyarrow_time": round(biofed_s / reference_s, 2),
        "machine": f"{platform.machine()} {platform.python_version()}",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:<32} {value}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
