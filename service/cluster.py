"""Work past one machine on a Dask cluster: connecting to one (or starting a local one), and batch mapping
spread over its workers. Monitors need no code here: `monitors.scale` runs on whatever client is active.

An address is `tcp://host:8786` (any scheme dask.distributed speaks, or plain `host:port`) for a running
scheduler, or `local:N` for a LocalCluster of N worker processes on this machine, closed when done.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from models.suggest import CHUNK
from service.settings import Settings

CONNECT_TIMEOUT = "10s"  # a scheduler that has not answered by then is down or unreachable
LOCAL = re.compile(r"local(?::(\d+))?")
LOCAL_PROCESSES = True  # local workers in processes (the GIL would serialise threads); tests use threads
# source items per task: whole suggester chunks, so a worker encodes the very batches the single-process
# run encodes (identical floats, identical ranking), and few enough per task to spread a list evenly
ITEMS_PER_TASK = 8 * CHUNK


class ClusterError(ValueError):
    """No cluster at that address, or an address that is not one: one line a user can act on."""


@contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A dask.distributed Client on `address`, active for the block (dask's computations run there);
    a local cluster started for it is closed at the end."""
    from distributed import Client, LocalCluster

    address = check_address(address)
    local = LOCAL.fullmatch(address)
    if local:
        workers = int(local.group(1) or os.cpu_count() or 1)
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=LOCAL_PROCESSES, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClusterError(f"dask scheduler {address}: unreachable ({reason[:200]})") from None
    with client:
        yield client


def check_address(address: str) -> str:
    """The address, stripped, or a ClusterError saying what an address looks like."""
    address = address.strip()
    local = LOCAL.fullmatch(address)
    if local and local.group(1) is not None and int(local.group(1)) < 1:
        raise ClusterError(f"dask address {address!r}: local:N needs at least one worker")
    if not local and not re.fullmatch(r"[a-z]+://\S+|[\w.-]+:\d+", address):
        raise ClusterError(f"dask address {address!r}: expected tcp://HOST:PORT or local:N")
    return address


def describe(client: Any) -> str:
    """'N workers, T threads' of the client's cluster, for a progress line."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return f"{len(workers)} workers, {sum(w['nthreads'] for w in workers)} threads"


def scheduler_for(settings: Settings, batch: str, requested: str | None = None, feed: str | None = None) -> str | None:
    """Where to score a batch (a path or a glob): the cluster asked for; else the feed's, or the configured
    one, for a glob or a batch of at least `dask_min_bytes`; else None (in memory)."""
    configured = feed or settings.dask_scheduler
    if requested is not None or configured is None:
        return requested
    if glob.has_magic(batch):
        return configured
    return scheduler_for_size(settings, os.path.getsize(batch) if os.path.isfile(batch) else 0, feed)


def scheduler_for_size(settings: Settings, size: int, feed: str | None = None) -> str | None:
    """Where to score a batch of `size` bytes: the feed's or the configured cluster when it is at least
    `dask_min_bytes`; else None (in memory)."""
    configured = feed or settings.dask_scheduler
    return configured if configured is not None and size >= settings.dask_min_bytes else None


# -- batch mapping ----------------------------------------------------------------------------------
def suggest_on_cluster(
    client: Any,
    settings: Settings,
    terminology: str,
    items: Sequence[Any],
    top_k: int,
    where: dict[str, Any] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> list[list[Any]]:
    """`Suggester.suggest` over the cluster's workers: the items cut in runs of ITEMS_PER_TASK, each ranked
    by the worker's own serving suggester (built once per worker process from the shared CROSSWALK_HOME,
    whose index cache it reads), the results put back in input order."""
    from distributed import as_completed

    if not items:
        return []
    # one worker builds the index first (minutes on a first run) and fills the shared cache, which every
    # other worker then reads instead of building the same index at the same time
    client.submit(_suggester_size, settings, terminology, pure=False).result()
    parts = [list(items[start : start + ITEMS_PER_TASK]) for start in range(0, len(items), ITEMS_PER_TASK)]
    futures = [client.submit(_suggest_part, settings, terminology, p, top_k, where, pure=False) for p in parts]
    position = {future: i for i, future in enumerate(futures)}
    results: list[list] = [[] for _ in futures]
    for future, ranked in as_completed(futures, with_results=True):
        results[position[future]] = ranked
        if on_chunk:
            on_chunk(len(ranked))
    return [suggestions for part in results for suggestions in part]


def _suggester_size(settings: Settings, terminology: str) -> int:
    from service.engine import get_suggester

    return len(get_suggester(settings, terminology).terminology)


def _suggest_part(settings: Settings, terminology: str, items: list, top_k: int, where: dict | None) -> list:
    """On a worker: its process's serving suggester (cached per settings and terminology) ranks one run."""
    from service.engine import get_suggester

    return get_suggester(settings, terminology).suggest(items, top_k=top_k, where=where)
