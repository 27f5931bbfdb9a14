"""Support for the sweep tests: a real Ray cluster on 127.0.0.1 (free ports only, dashboard off,
bounded object store, its own temp dir, every process it started stopped by PID), and a killer
that SIGKILLs the worker process of a running trial."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 80 * 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_ports() -> list[str]:
    return [
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        "--min-worker-port=0",  # workers bind OS-chosen ports
        "--max-worker-port=0",
    ]


class RayCluster:
    """``with RayCluster(nodes=2, cpus=1) as c: ray.init(address=c.address)``."""

    def __init__(self, *, nodes: int = 2, cpus: int = 1, env: dict[str, str] | None = None) -> None:
        self.nodes, self.cpus = nodes, cpus
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: unix socket paths
        # No token authentication: a driver reads Ray's auth settings once, when ray is
        # imported, so a per-cluster token cannot reach a test process that imported ray
        # already. The cluster binds to this machine only for the length of one test.
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled",
                    **(env or {})}  # fmt: skip
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.started_s = float("nan")

    def _ray_start(self, *args: str) -> None:
        out = subprocess.run(
            [RAY, "start", f"--num-cpus={self.cpus}", "--disable-usage-stats",
             f"--object-store-memory={OBJECT_STORE_BYTES}",
             "--node-ip-address=127.0.0.1", *_node_ports(), *args],
            env=self.env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out.stderr[-3000:]}")

    def __enter__(self) -> RayCluster:
        t0 = time.perf_counter()
        try:
            self._ray_start("--head", f"--port={self.port}", f"--temp-dir={self.temp}",
                            "--include-dashboard=false", f"--dashboard-port={free_port()}")  # fmt: skip
            for _ in range(self.nodes - 1):
                self._ray_start(f"--address={self.address}")
        except BaseException:
            self.stop()
            raise
        self.started_s = time.perf_counter() - t0
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pids(self) -> list[int]:
        """Every live process of this cluster: those naming its temp dir, and their children."""
        roots = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(self.temp in part for part in p.info["cmdline"] or []):
                    roots.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        found = {p.pid for p in roots}
        for p in roots:
            try:
                found.update(c.pid for c in p.children(recursive=True))
            except psutil.NoSuchProcess:
                continue
        found.discard(os.getpid())
        return sorted(found)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process of the cluster by PID, SIGKILL what is left, remove the dir."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        _, alive = psutil.wait_procs(_procs(pids), timeout=timeout)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=timeout)
        shutil.rmtree(self.temp, ignore_errors=True)


def _procs(pids: list[int]) -> list[psutil.Process]:
    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return out


class WorkerKiller:
    """A thread that SIGKILLs the worker process of the first trial it sees running at step
    >= ``min_step`` (read from the sweep's trial records; never this process). ``killed``
    holds the trial id, pid and step afterwards."""

    def __init__(self, directory: Path, min_step: int) -> None:
        self.directory, self.min_step = Path(directory), min_step
        self.killed: dict[str, object] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> WorkerKiller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for path in sorted((self.directory / "trials").glob("*.json")):
                try:
                    rec = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError):
                    continue
                running = rec.get("state") == "running" and rec.get("step", 0) >= self.min_step
                if running and rec["pid"] != os.getpid():
                    os.kill(rec["pid"], signal.SIGKILL)
                    self.killed.update(trial=rec["trial_id"], pid=rec["pid"], step=rec["step"])
                    return
            time.sleep(0.02)
