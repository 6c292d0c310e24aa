"""procstat.py - CPU and memory of a process tree, read from /proc.

Used by bench.py to measure each MTA while a generator drives it:

  tree_pids(root)        the root and all its descendants (one /proc scan);
                         every `root` here may also be a list of pids
  cpu_seconds(root)      CPU of the tree: for every live process utime +
                         stime + cutime + cstime.  A process that exited
                         and was reaped is counted in its reaper's cutime,
                         so for Postfix (master reaps smtpd, cleanup, ...)
                         the difference of two readings is exactly the CPU
                         spent in between, even by processes that came and
                         went.  Threads are included (stat is per process).
  memory_kib(root, pss)  summed RSS (and optionally PSS, which shares the
                         pages of libraries fairly between processes).
  PeakSampler            a thread that samples the summed RSS and PSS of
                         the tree every `interval` seconds, keeps the peaks.
  mem_available_kib()    MemAvailable from /proc/meminfo (kernel memory
                         such as sockets and page tables shows up here).

Clock ticks are 10 ms on this kernel: runs last seconds and burn hundreds
of ms of CPU at least, so the resolution is ample.
"""
import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _read_stat(pid):
    """(ppid, utime+stime+cutime+cstime ticks, rss pages) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the
    # last ')'
    fields = data[data.rindex(b")") + 2:].split()
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    rss = int(fields[21])
    return ppid, ticks, rss


def _scan():
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                procs[int(name)] = st
    return procs


def _tree(procs, roots):
    """The roots (a pid or a list of pids) and all their descendants."""
    children = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out, seen = [], set()
    todo = [roots] if isinstance(roots, int) else list(roots)
    while todo:
        pid = todo.pop()
        if pid in procs and pid not in seen:
            seen.add(pid)
            out.append(pid)
            todo.extend(children.get(pid, ()))
    return out


def tree_pids(root):
    return _tree(_scan(), root)


def cpu_seconds(root):
    procs = _scan()
    return sum(procs[p][1] for p in _tree(procs, root)) / CLK_TCK


def _pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_kib(root, pss=False):
    """(summed RSS KiB, summed PSS KiB or None, process count)."""
    procs = _scan()
    pids = _tree(procs, root)
    rss = sum(procs[p][2] for p in pids) * PAGE_KIB
    return rss, (sum(_pss_kib(p) for p in pids) if pss else None), len(pids)


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


class PeakSampler:
    """Samples the memory of a process tree in a thread: .peak_kib is the
    peak of the summed RSS, .peak_pss_kib that of the summed PSS (which
    counts shared library pages once across Postfix's processes)."""

    def __init__(self, root, interval=0.25):
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.peak_pss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        rss, pss, _ = memory_kib(self.root, pss=True)
        self.peak_kib = max(self.peak_kib, rss)
        self.peak_pss_kib = max(self.peak_pss_kib, pss)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        return False


def busy_cores(seconds=2.0):
    """CPU busy in cores, averaged over `seconds`, from /proc/stat: taken
    while the bench itself is idle, it tells how much other work shares
    the machine."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v[:8]) - idle, sum(v[:8])
    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / (t1 - t0) * os.cpu_count() if t1 > t0 else 0.0


def fs_probe(directory, files=1000, syncs=100):
    """(system CPU µs to create one 1 KiB file, ms per write+fsync of a new
    1 KiB file) in `directory`: what the filesystem charges every queue
    file.  On a shared machine this moves (ext4 without a journal scans
    past recently deleted inodes when creating files), so the bench
    records it before and after the run."""
    probe = os.path.join(directory, f".fsprobe-{os.getpid()}-{time.monotonic_ns()}")
    os.makedirs(probe)
    r0 = os.times()
    for i in range(files):
        fd = os.open(os.path.join(probe, f"c{i}"), os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, b"x" * 1024)
        os.close(fd)
    r1 = os.times()
    t0 = time.monotonic()
    for i in range(syncs):
        fd = os.open(os.path.join(probe, f"s{i}"), os.O_CREAT | os.O_WRONLY, 0o600)
        os.write(fd, b"x" * 1024)
        os.fsync(fd)
        os.close(fd)
    t1 = time.monotonic()
    create_us = (r1.system - r0.system) * 1e6 / files
    return round(create_us, 1), round((t1 - t0) * 1000 / syncs, 3), probe


AGE_ROUND = 10000
AGE_MAX = 2000000


def age_filesystem(directory, files, keep_every=16):
    """Ages the filesystem of `directory` in a defined, bounded way: `files`
    (at most AGE_MAX) 1 KiB files are created in `directory`/.aged, in
    rounds of AGE_ROUND, then each round's files are unlinked but one in
    `keep_every`, as a spool's churn leaves the inode and block bitmaps
    fragmented and its directory blocks grown.  The kept files stay for the
    run.  Returns (files made, seconds, files kept)."""
    files = min(files, AGE_MAX)
    aged = os.path.join(directory, ".aged")
    os.makedirs(aged, exist_ok=True)
    payload = b"a" * 1023 + b"\n"
    t0 = time.monotonic()
    kept = 0
    for first in range(0, files, AGE_ROUND):
        names = [os.path.join(aged, f"f{i}")
                 for i in range(first, min(first + AGE_ROUND, files))]
        for name in names:
            fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            os.write(fd, payload)
            os.close(fd)
        for i, name in enumerate(names):
            if (first + i) % keep_every:
                os.unlink(name)
            else:
                kept += 1
    os.sync()
    return files, round(time.monotonic() - t0, 1), kept


def wait_for(predicate, timeout, interval=0.01):
    """Polls predicate() until true or timeout; returns the last value."""
    end = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < end:
        time.sleep(interval)
        value = predicate()
    return value
