"""One long-lived JAX-backend Python process per test process, for every JAX-side check.

The Keras backend is fixed by the first ``import keras`` of a process and the test process runs
TensorFlow, so the JAX oracles (:mod:`tests.oracles.jax_macs`, the JAX half of the ERF and golden
checks) run in another interpreter. Starting one costs 7-10 s of CPU (Keras, JAX, and whatever
they import), more than most of the checks themselves, so instead of one subprocess per check
every test process shares one worker, started on the first request and stopped at exit::

    from tests.oracles import jax_worker

    jax_worker.call("tests.oracles.jax_macs:trace_builders", builders=["mha_self"])

The worker is this module run as ``python -m tests.oracles.jax_worker`` with
``KERAS_BACKEND=jax``, ``JAX_PLATFORMS=cpu`` (unless set), ``TF_ENABLE_ONEDNN_OPTS=0``,
``TF_CPP_MIN_LOG_LEVEL=3``, the repository root on ``PYTHONPATH`` and as working directory.

Protocol: one JSON request per line on the worker's stdin, ``{"id": int, "call":
"module:function", "kwargs": {...}}``; the worker runs ``keras.backend.clear_session()`` (so the
auto-generated layer names of a request do not depend on the requests before it), imports the
module, calls the function with the keyword arguments and writes one line on its original
stdout: :data:`MARKER` then ``{"id": int, "ok": true, "result": ...}`` or ``{"id": int, "ok":
false, "error": {"type", "message", "traceback"}}``. Arguments and results must be JSON (numpy
scalars and arrays are sent as numbers and nested lists). File descriptor 1 of the worker is
pointed at its stderr for everything but the protocol, so what the libraries print (also from C)
cannot corrupt a reply, and its stdin at ``/dev/null``, so no function can read a request.

pytest-xdist runs each test file group in its own process: each has at most one worker.
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import json
import os
import pathlib
import queue
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

__all__ = ["MARKER", "DEFAULT_TIMEOUT", "JaxWorkerError", "JaxWorker", "worker", "call"]

MARKER = "JAX_WORKER_REPLY "  # prefix of every protocol line the worker writes
DEFAULT_TIMEOUT = 600.0  # seconds a request may take, JAX's start-up included on the first
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
_STDERR_TAIL = 3000  # characters of the worker's stderr quoted in an error


class JaxWorkerError(RuntimeError):
    """A request to the JAX worker failed: the function raised, timed out, or the worker died."""


# -- the parent side -------------------------------------------------------------------------

class JaxWorker:
    """A persistent ``KERAS_BACKEND=jax`` subprocess that runs ``module:function`` calls.

    The process starts on the first :meth:`request` (or :meth:`start`) and again after it died
    or timed out. Requests are serialised with a lock, so threads may share one worker (a
    fixture can send its request from a background thread while the tests run).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._replies: queue.Queue | None = None
        self._stderr = None  # temporary file: a pipe nobody reads would block the worker
        self._ids = itertools.count(1)
        self._owner = os.getpid()  # a forked child must not drive its parent's worker

    @property
    def pid(self) -> int | None:
        """The worker's process id, or None when none is running."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Start the worker now (it imports Keras and JAX while the caller goes on)."""
        with self._lock:
            self._ensure_running()

    def request(self, call: str, kwargs: dict | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run ``call`` (``"module:function"``) with ``kwargs`` in the worker.

        Parameters
        ----------
        call : str
            ``module:function``, importable from the repository root.
        kwargs : dict, optional
            Keyword arguments, JSON-serialisable.
        timeout : float
            Seconds to wait for the reply; the worker is stopped when they run out (a Python
            call cannot be interrupted), and the next request starts a new one.

        Returns
        -------
        object
            The function's return value, through JSON.

        Raises
        ------
        JaxWorkerError
            When the function raises (naming it, with the exception and its traceback's end;
            the worker stays usable), when the reply does not come within ``timeout``, or when
            the worker dies (with its exit code and the end of its stderr).
        """
        message = {"id": None, "call": call, "kwargs": kwargs or {}}
        with self._lock:
            self._ensure_running()
            message["id"] = number = next(self._ids)
            try:
                line = json.dumps(message) + "\n"
            except TypeError as exc:
                raise JaxWorkerError(f"The arguments of {call} are not JSON: {exc}") from None
            try:
                self._process.stdin.write(line)
                self._process.stdin.flush()
            except (BrokenPipeError, OSError):
                raise self._died(call) from None
            reply = self._wait_for_reply(call, number, timeout)
        if reply["ok"]:
            return reply["result"]
        error = reply["error"]
        raise JaxWorkerError(
            f"{call} raised {error['type']} in the JAX worker: {error['message']}\n"
            f"{error['traceback']}"
        )

    def close(self, timeout: float = 10) -> None:
        """Stop the worker: it exits when its stdin closes; killed if it does not in time."""
        if os.getpid() != self._owner:  # forked: the process belongs to the parent
            return
        with self._lock:
            self._stop(timeout)

    # -- internals: called with the lock held --

    def _ensure_running(self) -> None:
        if os.getpid() != self._owner:  # forked: the process belongs to the parent
            self.__init__()
        if self._process is not None and self._process.poll() is None:
            return
        self._stop(0)
        env = {**os.environ, "KERAS_BACKEND": "jax", "TF_ENABLE_ONEDNN_OPTS": "0",
               "TF_CPP_MIN_LOG_LEVEL": "3",
               "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p
        )
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__], env=env, cwd=REPO_ROOT, text=True,
            encoding="utf-8", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        # A thread reads the replies so that waiting for one can time out.
        self._replies = queue.Queue()
        threading.Thread(target=_read_lines, args=(self._process.stdout, self._replies),
                         name="jax-worker-reader", daemon=True).start()

    def _wait_for_reply(self, call: str, number: int, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                tail = self._stderr_tail()
                self._stop(0)
                raise JaxWorkerError(
                    f"{call} did not finish within {timeout:g} s in the JAX worker, which was "
                    f"stopped (the next request starts a new one). Its stderr ends with:\n{tail}"
                ) from None
            if line is None:
                raise self._died(call)
            if not line.startswith(MARKER):
                continue  # not ours (nothing else should reach this pipe, but never misparse)
            reply = json.loads(line[len(MARKER):])
            if reply.get("id") == number:
                return reply

    def _died(self, call: str) -> JaxWorkerError:
        try:
            code = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        tail = self._stderr_tail()
        self._stop(0)
        return JaxWorkerError(
            f"The JAX worker died (exit code {code}) while running {call}. Its stderr ends "
            f"with:\n{tail}"
        )

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        # pread: the worker shares this file's offset, so seeking would move its writes
        fd = self._stderr.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - 4 * _STDERR_TAIL)
        text = os.pread(fd, size - start, start).decode("utf-8", "replace")
        return text[-_STDERR_TAIL:]

    def _stop(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                process.stdin.close()
                process.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
            if process.poll() is None:
                process.kill()
                process.wait()
        if process is not None:
            for stream in (process.stdin, process.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _read_lines(stream, replies: queue.Queue) -> None:
    """Put every line of ``stream`` on ``replies``, then None at end of file."""
    try:
        for line in stream:
            replies.put(line)
    except (OSError, ValueError):  # closed under us by _stop
        pass
    replies.put(None)


_WORKER: JaxWorker | None = None
_WORKER_LOCK = threading.Lock()


def worker() -> JaxWorker:
    """This process's JAX worker (created on first use, stopped at exit)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = JaxWorker()
            atexit.register(_WORKER.close)
        return _WORKER


def call(target: str, /, *, timeout: float = DEFAULT_TIMEOUT, **kwargs: Any) -> Any:
    """``target(**kwargs)`` run in this process's JAX worker; see :meth:`JaxWorker.request`.

    A function with a keyword argument named ``timeout`` takes it through
    ``worker().request(target, {"timeout": ...})``.
    """
    return worker().request(target, kwargs, timeout=timeout)


# -- the worker side -------------------------------------------------------------------------

def _resolve(target: str):
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"Expected 'module:function'. Received: {target!r}")
    value = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot encode itself: numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _answer(request: dict) -> dict:
    number = request.get("id")
    try:
        import keras

        keras.backend.clear_session(free_memory=False)  # no gc.collect: 0.5 s a call
        result = _resolve(request["call"])(**request.get("kwargs", {}))
        return {"id": number, "ok": True, "result": json.loads(json.dumps(result, default=_plain))}
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every failure goes to the caller
        return {"id": number, "ok": False, "error": {
            "type": type(exc).__name__, "message": str(exc),
            "traceback": traceback.format_exc()[-_STDERR_TAIL:],
        }}


def main() -> int:
    """Serve requests from stdin until it closes (the parent exited or called close)."""
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # what anything else prints (Python or C) goes to stderr
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.environ["KERAS_BACKEND"] = "jax"  # also when started by hand
    import keras  # noqa: F401 - fixes the backend and loads Keras and JAX before the first request

    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except json.JSONDecodeError as exc:
            reply = {"id": None, "ok": False, "error": {
                "type": type(exc).__name__, "message": f"{exc} in {line[:200]!r}",
                "traceback": ""}}
        else:
            reply = _answer(request)
        protocol.write(MARKER + json.dumps(reply) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
