"""CPU seconds per test, to see where the suite's time goes (opt-in, for developers).

    python -m pytest -q -p tests.cpu_times      # each worker appends to $CPU_TIMES_DIR
    python -m tests.cpu_times                   # the files' CPU seconds, largest first

The suite is CPU-bound on 2 cores (the workers overlap only waits), so its wall time is about
its CPU time / 2: CPU seconds, not the workers' wall durations (which count the time a test
waited for a core), say what a change saves. A test's CPU includes the subprocesses it waited
for; a module fixture's falls on the first test that uses it.
"""

import collections
import os
import resource
import sys
import tempfile
import time

import pytest

FOLDER = os.environ.get("CPU_TIMES_DIR", os.path.join(tempfile.gettempdir(), "cpu_times"))


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _cpu_seconds(), time.monotonic()
    yield
    os.makedirs(FOLDER, exist_ok=True)
    with open(os.path.join(FOLDER, f"{os.getpid()}.tsv"), "a") as f:
        f.write(f"{item.nodeid}\t{_cpu_seconds() - cpu:.2f}\t{time.monotonic() - wall:.2f}\n")


def by_file(folder: str = FOLDER) -> list[tuple[float, str]]:
    totals = collections.Counter()
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as f:
            for line in f:
                nodeid, cpu, _ = line.rstrip("\n").split("\t")
                totals[nodeid.split("::")[0]] += float(cpu)
    return sorted(((cpu, path) for path, cpu in totals.items()), reverse=True)


if __name__ == "__main__":
    rows = by_file(sys.argv[1] if len(sys.argv) > 1 else FOLDER)
    for cpu, path in rows:
        print(f"{cpu:8.1f}  {path}")
    print(f"{sum(cpu for cpu, _ in rows):8.1f}  CPU seconds in all")
