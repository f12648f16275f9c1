"""Worst-case and common-case scoring time per completion, for every task's scorer.

    python benchmarks/bench_scorers.py [--timeout 5] [--repeats 20]

Hostile completions (a power tower, a double factorial, a large power, thousands of nested or unclosed
\\boxed{, a very long <answer>) are scored once each, from the main thread and from a worker thread;
the common case (ordinary MATH-500 answers that math-verify must compare) is timed in the worker
process against math-verify called in-process on the same pairs, both warmed up first. Prints a table
and the worst case per scorer; the math-verify worker's start-up is reported apart (paid once, and
again only after a kill).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from dlmtune.tasks import get_task
from dlmtune.tasks.math500 import Math500Task, equivalent

ITEMS = {
    "sudoku": {"puzzle": "1030002100000012", "solution": "1234342121434312"},
    "countdown": {"numbers": [3, 5, 7], "target": 36},
    "gsm8k": {"question": "q", "answer": "#### 72"},
    "math500": {"problem": "p", "answer": "2"},
}
N = 20_000
HOSTILE = {
    "tower 9^{9^{9}}": r"\boxed{9^{9^{9}}}",
    "100000!!": r"\boxed{100000!!}",
    "(x+1)^{1000}": r"\boxed{(x+1)^{1000}}",
    f"{N} nested \\boxed{{": r"\boxed{" * N + "1" + "}" * N,
    f"{N} unclosed \\boxed{{": r"\boxed{" * N,
    "long <answer>": "<answer>" + "(1+" * N + "</answer>",
    "digits": r"\boxed{" + "9" * N + "}",
}
# (gold, prediction) pairs whose normalised strings differ, so math-verify decides
COMMON = [("\\frac{1}{2}", "0.5"), ("2\\sqrt{2}", "\\sqrt{8}"), ("x^2+2x+1", "(x+1)^2"), ("\\pi", "3.14"),
          ("(1,2)", "(1, 2)"), ("10", "11"), ("\\frac{3}{4}", "0.75"), ("2^{10}", "1024")]


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def in_process(gold: str, prediction: str) -> bool:
    from math_verify import parse, verify

    return verify(parse(f"\\boxed{{{gold}}}", parsing_timeout=None), parse(f"\\boxed{{{prediction}}}", parsing_timeout=None),
                  timeout_seconds=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0, help="math-verify's time per completion (s)")
    parser.add_argument("--repeats", type=int, default=20, help="rounds of the common-case pairs")
    args = parser.parse_args()
    tasks = {name: get_task(name) for name in ITEMS} | {"math500": Math500Task(timeout_s=args.timeout)}

    startup = timed(tasks["math500"].score, r"\boxed{0.5}", {"answer": "\\frac{1}{2}"})
    print(f"math-verify worker start-up (once): {startup:.2f} s; limit {args.timeout:g} s per completion")
    worst: dict[str, float] = {}
    print(f"{'completion':<24}" + "".join(f"{name:>12}" for name in tasks) + f"{'(thread)':>12}")
    with ThreadPoolExecutor(1) as pool:
        for label, text in HOSTILE.items():
            row = {name: timed(task.score, text, ITEMS[name]) for name, task in tasks.items()}
            threaded = pool.submit(timed, tasks["math500"].score, text, ITEMS["math500"]).result()
            for name, seconds in row.items():
                worst[name] = max(worst.get(name, 0.0), seconds)
            worst["math500"] = max(worst["math500"], threaded)
            print(f"{label:<24}" + "".join(f"{row[name]:>12.3f}" for name in tasks) + f"{threaded:>12.3f}")
    print("worst case per completion (s): " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in worst.items()))

    for gold, prediction in COMMON:  # warm both paths
        in_process(gold, prediction)
        equivalent(prediction, gold, args.timeout)
    worker_times, direct_times = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        for gold, prediction in COMMON:
            worker_times.append(timed(equivalent, prediction, gold, args.timeout))
            direct_times.append(timed(in_process, gold, prediction))
    worker, direct = statistics.median(worker_times), statistics.median(direct_times)
    print(f"common case, median per comparison: worker {worker * 1e3:.2f} ms, in-process {direct * 1e3:.2f} ms "
          f"(overhead {(worker - direct) * 1e3:.2f} ms, ratio {worker / direct:.2f}); n={len(worker_times)}")


if __name__ == "__main__":
    main()
