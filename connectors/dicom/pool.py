"""Read files in worker processes, chunk by chunk, in the order they were listed.

Workers return plain tuples (one per instance) and reject triples, never frames: pickling
tuples is cheap and the parent builds each batch's frame once with the explicit schema.

Start method: ``forkserver``. The pipeline calls the connector inside a Dagster run
process that has threads, and a plain ``fork`` of a threaded process can deadlock in the
child (a lock held by another thread at the fork stays held forever). ``spawn`` starts a
fresh interpreter per worker, each importing pydicom and polars: about 2 s to a ready
pool of two here. The fork server starts once per process with this module (and the main
module, as multiprocessing does by default) preloaded, then forks each worker from itself
(it has no threads): about 1 s to the first ready pool, 0.02 s for later pools (a fork
takes 0.02 s). While the first pool starts, the caller's process reads chunks itself.
At most ``workers * 3`` chunks are in flight, which bounds memory whatever the folder's size.
"""

import multiprocessing
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import NamedTuple

from connectors.dicom import dictionary
from connectors.dicom.instance import InstanceRejected, instance_row
from connectors.dicom.sources import FileRef, ListingReject, ReadError, ZipCache

CHUNK_FILES = 32
"""Files per task sent to a worker: enough to amortise the round trip (about 0.2 ms)."""

IN_PROCESS_BELOW = 2 * CHUNK_FILES
"""Sources with fewer files are read in the caller's process: a pool would cost more."""

CORRUPT = "the header cannot be parsed: the file is corrupt"

_IN_FLIGHT_PER_WORKER = 3
_WORKER_MODULE = "connectors.dicom.pool"


class Reject(NamedTuple):
    """One file set aside: its ``source_file``, locator and fixed reason."""

    source: str
    locator: str
    reason: str


class ChunkResult(NamedTuple):
    """What a worker read from one chunk: rows in ``INSTANCE_COLUMNS`` order, rejects, how
    many files the chunk named, and the CPU seconds the worker spent on it."""

    rows: list[tuple]
    rejects: list[Reject]
    files: int
    cpu_seconds: float


_zips = ZipCache()


def read_chunk(items: list[FileRef | ListingReject]) -> ChunkResult:
    """Read a chunk of files (runs in a worker, or in process for small sources).

    Args:
        items: files to read, and listing rejects to pass through in order.

    Returns:
        The rows and rejects, each in the chunk's order.
    """
    started = time.process_time()
    rows: list[tuple] = []
    rejects: list[Reject] = []
    for item in items:
        if isinstance(item, ListingReject):
            rejects.append(Reject(item.label, "file", item.reason))
            continue
        try:
            data = _zips.read(item)
            rows.append(instance_row(data, item.label))
        except ReadError as exc:
            rejects.append(Reject(item.label, "file", exc.reason))
        except InstanceRejected as exc:
            rejects.append(Reject(item.label, exc.locator, exc.reason))
        except (ValueError, IndexError, KeyError, TypeError, struct.error, RecursionError):
            # A structure the parser does not expect: set the file aside rather than stop a
            # batch of thousands; the reason stays fixed (no value can leak through it).
            rejects.append(Reject(item.label, "file", CORRUPT))
    _zips.close()
    return ChunkResult(rows, rejects, len(items), time.process_time() - started)


def default_workers() -> int:
    """min(usable CPUs, 4): the pool size when the caller does not choose one."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, 4))


def chunked(items: Iterable[FileRef | ListingReject], size: int) -> Iterator[list]:
    """Cut the listing into lists of ``size`` items (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _started() -> None:
    """A no-op task: its completion tells that a worker process is up."""


def read_chunks(chunks: Iterable[list], workers: int) -> Iterator[ChunkResult]:
    """Read chunks in ``workers`` processes (in process when ``workers`` is 1).

    Results come back in the order of ``chunks``. The first pool of a process waits for
    the fork server to start and import pydicom and polars (about 0.7 s here); meanwhile
    the caller's process reads chunks itself, so that the startup costs no throughput.
    Closing the iterator early cancels the chunks not yet started and waits for the
    running ones.

    Args:
        chunks: lists of files to read.
        workers: processes to use.

    Yields:
        One ``ChunkResult`` per chunk.
    """
    if workers <= 1:
        for chunk in chunks:
            yield read_chunk(chunk)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", _WORKER_MODULE])
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=dictionary.install,
        initargs=(dictionary.tables(),),
    )
    ready = threading.Event()

    def start_workers() -> None:
        try:
            for future in [executor.submit(_started) for _ in range(workers)]:
                future.result()
        except Exception:  # a broken pool raises again at the next submit
            pass
        finally:
            ready.set()

    starter = threading.Thread(target=start_workers, name="dicom-pool-start", daemon=True)
    starter.start()
    window: deque[ChunkResult | Future[ChunkResult]] = deque()
    in_flight = workers * _IN_FLIGHT_PER_WORKER
    try:
        for chunk in chunks:
            if ready.is_set():
                window.append(executor.submit(read_chunk, chunk))
            else:
                window.append(read_chunk(chunk))
            while window and (isinstance(window[0], ChunkResult) or len(window) >= in_flight):
                done = window.popleft()
                yield done if isinstance(done, ChunkResult) else done.result()
        while window:
            done = window.popleft()
            yield done if isinstance(done, ChunkResult) else done.result()
    finally:
        starter.join()
        executor.shutdown(wait=True, cancel_futures=True)
