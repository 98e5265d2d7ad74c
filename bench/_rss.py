"""Peak resident memory of a process tree, sampled in a thread (shared by the benchmarks)."""

from __future__ import annotations

import threading


class TreeRSS:
    """Sample the summed RSS of a process and all its descendants until the block ends.

    Use as ``with TreeRSS(pid) as rss: ...``; ``rss.peak`` is the largest sum seen (bytes).
    """

    def __init__(self, pid: int, interval: float = 0.1):
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
