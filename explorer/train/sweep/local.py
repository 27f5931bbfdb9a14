"""The local backend: configs over a pool of worker processes, the seeds of each config batched
in one worker (vmap). Workers are fresh interpreters (``python -m
explorer.train.sweep._worker``) talking to this process over a private pipe, so a script needs
no ``if __name__ == "__main__"`` guard and a notebook's own functions travel by value
(cloudpickle). A worker that dies (killed, out of memory, a crash in native code) costs only
its trials' steps since their last checkpoint: they are run again from there on a fresh worker
(up to ``max_failures`` times), then recorded as failed; the other workers go on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any

import cloudpickle

from explorer.train.sweep.plan import SweepPlan, Trial
from explorer.train.sweep.progress import Tracker
from explorer.train.sweep.runner import run_config
from explorer.train.sweep.store import SweepStore

__all__ = ["available_cores", "run_local"]


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _Worker:
    """One worker process and its end of the pipe; ``task`` is what it is running now."""

    def __init__(self, payload: tuple[bytes, str], threads: int) -> None:
        mine, theirs = Pipe(duplex=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [p for p in sys.path if p] + [env.get("PYTHONPATH", "")]
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "explorer.train.sweep._worker", str(theirs.fileno()),
             str(threads)],
            pass_fds=[theirs.fileno()],
            env=env,
        )  # fmt: skip
        theirs.close()
        self.conn: Connection = mine
        self.conn.send(("plan", payload))
        self.task: list[Trial] | None = None

    def run(self, task: list[Trial]) -> None:
        self.task = task
        self.conn.send(("run", [t.trial_id for t in task]))

    def ask_to_stop(self) -> None:
        try:
            self.conn.send(("stop", None))
        except OSError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit, then terminate and kill it by PID if it does not."""
        self.ask_to_stop()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.conn.close()


def run_local(
    plan: SweepPlan,
    store: SweepStore,
    tasks: list[list[Trial]],
    tracker: Tracker,
    *,
    workers: int,
    max_failures: int,
) -> None:
    """Run ``tasks`` (groups of seeds of one config, see :meth:`SweepPlan.groups`) on
    ``workers`` processes; ``workers=0`` runs them in this process, one after another."""
    if workers == 0:
        for task in tasks:
            run_config(plan, store, task, _trial_events(tracker))
        return
    threads = max(1, available_cores() // workers)
    queue = deque(tasks)
    payload = (cloudpickle.dumps(plan), str(store.path))
    attempts: Counter[str] = Counter()
    pool: list[_Worker] = []
    try:
        pool = [_Worker(payload, threads) for _ in range(min(workers, len(queue)))]
        while queue or any(w.task for w in pool):
            for w in pool:
                if w.task is None and queue:
                    w.run(queue.popleft())
            busy = {w.conn: w for w in pool if w.task is not None}
            for conn in wait(list(busy), timeout=1.0):
                w = busy[conn]  # type: ignore[index]
                try:
                    kind, body = w.conn.recv()
                except (EOFError, OSError):
                    queue.extend(_lost(store, tracker, w, attempts, max_failures))
                    pool.remove(w)
                    w.conn.close()
                    if queue:
                        pool.append(_Worker(payload, threads))
                    continue
                if kind == "event":
                    tracker.event(body)
                elif kind == "idle":
                    w.task = None
                elif kind == "error":  # run_config itself failed: its trials failed with it
                    for t in w.task or []:
                        if not store.is_finished(t.trial_id):
                            store.update(t.trial_id, state="failed", error=body, ended=time.time())
                            tracker.event({"event": "finished", "trial_id": t.trial_id,
                                           "state": "failed"})  # fmt: skip
    finally:
        for w in pool:  # all at once: the workers exit together
            w.ask_to_stop()
        for w in pool:
            w.stop()


def _trial_events(
    sink: Callable[[dict[str, Any]], None] | Tracker,
) -> Callable[[dict[str, Any]], None]:
    """Pass on the per-trial events (the per-group ``step`` events are Ray's)."""
    send = sink.event if isinstance(sink, Tracker) else sink

    def emit(ev: dict[str, Any]) -> None:
        if ev["event"] != "step":
            send(ev)

    return emit


def _lost(
    store: SweepStore,
    tracker: Tracker,
    worker: _Worker,
    attempts: Counter[str],
    max_failures: int,
) -> list[list[Trial]]:
    """A worker died: its unfinished trials go back to the queue (to resume from their last
    checkpoint) or, past ``max_failures``, are recorded as failed."""
    code = worker.proc.wait()
    retry = []
    for t in worker.task or []:
        if (
            store.is_finished(t.trial_id)
            or (store.record(t.trial_id) or {}).get("state") == "failed"
        ):
            continue
        attempts[t.trial_id] += 1
        if attempts[t.trial_id] <= max_failures:
            retry.append(t)
            continue
        message = (
            f"the worker process {worker.proc.pid} running this trial died (exit code {code}); "
            f"tried {attempts[t.trial_id]} time(s)"
        )
        store.update(t.trial_id, state="failed", error=message, ended=time.time())
        tracker.event({"event": "finished", "trial_id": t.trial_id, "state": "failed",
                       "error": message})  # fmt: skip
    return [retry] if retry else []


def worker_main(fd: int, threads: int) -> None:
    """The worker loop (see ``_worker``): receive the plan, then run tasks until told to stop."""
    import torch

    torch.set_num_threads(threads)
    conn = Connection(fd)
    plan: SweepPlan | None = None
    store: SweepStore | None = None
    while True:
        kind, body = conn.recv()
        if kind == "stop":  # every file is written (atomically): skip the interpreter's teardown
            conn.close()
            os._exit(0)
        if kind == "plan":
            plan, store = cloudpickle.loads(body[0]), SweepStore(body[1])
            continue
        assert plan is not None and store is not None
        try:
            trials = [plan.trial(tid) for tid in body]
            run_config(plan, store, trials, _trial_events(lambda ev: conn.send(("event", ev))))
        except Exception:
            conn.send(("error", traceback.format_exc()))
        conn.send(("idle", None))
