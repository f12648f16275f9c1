"""math-verify with a hard time limit per call, from any thread: a persistent child process.

math-verify's own timeouts use signal.alarm, which works only in the main thread, and no signal can
stop a long computation inside C (a huge integer power such as 9^{9^{9}}). So the calls run in one
child process (this file run by path, so the child imports math-verify and nothing of dlmtune), one
JSON line per request and per reply:

- in the child, an interval timer stops a call that runs past the limit and the child answers
  "timed out" (the child's main thread owns the signal, so this works whoever calls the client);
- the client waits the limit plus a grace period for the reply; when none comes (a computation the
  timer cannot interrupt) it kills the child and starts a fresh one, whose start-up overlaps with
  whatever the caller does next.

Either way a call returns within `timeout_s + GRACE_S` (not counting a fresh child's start-up, which
is waited for separately) and reports `None`, which the scorer counts as timed out. Calls from several
threads are served one at a time.
"""

from __future__ import annotations

import atexit
import json
import select
import signal
import subprocess
import sys
import threading
import time

GRACE_S = 1.0
STARTUP_TIMEOUT_S = 120.0


class VerifyTimeout(BaseException):
    """Raised in the child by the interval timer; a BaseException so sympy's `except Exception` lets it pass."""


class VerifyWorker:
    """Client of the child process; `equivalent(gold, prediction, timeout_s)` -> True / False / None (timed out)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._ready = False
        self._lock = threading.Lock()
        atexit.register(self.close)

    def equivalent(self, gold: str, prediction: str, timeout_s: float) -> bool | None:
        request = json.dumps({"gold": gold, "prediction": prediction, "timeout_s": timeout_s}) + "\n"
        with self._lock:
            process = self._ready_process()
            process.stdin.write(request)
            process.stdin.flush()
            reply = self._read_line(process, timeout_s + GRACE_S)
            if reply is None:  # stuck where the child's timer cannot reach: replace the child now
                self.close()
                self._spawn()
                return None
            return json.loads(reply)["equivalent"]

    def _spawn(self) -> None:
        command = f"import runpy; runpy.run_path({__file__!r}, run_name='__main__')"
        self._process = subprocess.Popen([sys.executable, "-u", "-c", command], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, bufsize=1)
        self._ready = False

    def _ready_process(self) -> subprocess.Popen:
        """The child, started if need be and past its start-up (waited for apart from any request)."""
        if self._process is None or self._process.poll() is not None:
            self.close()
            self._spawn()
        if not self._ready:
            if self._read_line(self._process, STARTUP_TIMEOUT_S) is None:
                self.close()
                raise RuntimeError("the math-verify worker process did not start")
            self._ready = True
        return self._process

    @staticmethod
    def _read_line(process: subprocess.Popen, timeout_s: float) -> str | None:
        """The next line of the child's output, or None when it does not come in time (or the child died)."""
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([process.stdout], [], [], remaining)
            if ready:
                line = process.stdout.readline()
                return line or None
        return None

    def close(self) -> None:
        """Kill the child (it holds no state worth keeping); the next call starts another."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            for stream in (self._process.stdin, self._process.stdout):
                stream.close()
            self._process = None


def _on_alarm(signum, frame):
    raise VerifyTimeout


def _verify(gold: str, prediction: str, timeout_s: float) -> bool | None:
    from math_verify import parse, verify

    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        parsed_gold = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
        parsed_prediction = parse(f"\\boxed{{{prediction}}}", parsing_timeout=None)
        return bool(verify(parsed_gold, parsed_prediction, timeout_seconds=None))
    except VerifyTimeout:
        return None
    except Exception:  # math-verify and sympy can fail in many ways on arbitrary text
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def serve() -> None:
    """The child: a ready line, then one reply line per request line until stdin closes."""
    import logging

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # it warns that its own timeouts are off
    signal.signal(signal.SIGALRM, _on_alarm)
    _verify("\\frac{1}{2}", "0.5", STARTUP_TIMEOUT_S)  # imports and first-use set-up, before "ready"
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result = _verify(request["gold"], request["prediction"], request["timeout_s"])
        except VerifyTimeout:  # the timer fired between the call's end and its cancellation
            result = None
        print(json.dumps({"equivalent": result}), flush=True)


if __name__ == "__main__":
    serve()
