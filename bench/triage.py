"""Triage benchmark: prints figures, asserts nothing.

    python bench/triage.py [--seconds 3] [--rounds 5]

- start-up: `import jieba` + load keywords.toml + build the classifier the bot runs
  (tables, tokenizer and the model learned from config/triage_corpus), each in a fresh
  interpreter: cold (empty cache directory: jieba builds its prefix dictionary
  from dict.txt and writes the cache, the model is trained and cached) and warm
  (caches present);
- memory of the built classifier: tracemalloc (Python allocations) and peak RSS of
  that interpreter;
- throughput on one core after start-up, in CPU seconds (best of --rounds, so other
  load on the machine does not count): typical reports (tests/data/triage_eval.jsonl)
  and 200-character reports; jieba's own `Tokenizer.lcut(HMM=False)` on the same
  texts for comparison, the keyword tables without the model, and the classifier
  without its C speedups (handlers/_speedups.c: what runs where they were not built).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO / "tests" / "data" / "triage_eval.jsonl"

STARTUP_CODE = r"""
import json, pathlib, resource, sys, time, tracemalloc
trace = sys.argv[2] == "trace"  # tracing slows the build down a lot: time and trace in separate runs
t0 = time.perf_counter()
if trace:
    tracemalloc.start()
import logging
import jieba
jieba.setLogLevel(logging.WARNING)
from config.keywords import load_keywords
from handlers.triage_setup import build_triage
t1 = time.perf_counter()
classifier = build_triage(load_keywords(), pathlib.Path(sys.argv[1]))
t2 = time.perf_counter()
classifier.classify("施工许可证还没批，村民堵路")
current, peak = tracemalloc.get_traced_memory()
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"imports": t1 - t0, "build": t2 - t1, "total": t2 - t0,
                  "traced_mb": current / 2**20, "traced_peak_mb": peak / 2**20, "rss_mb": rss_kb / 1024}))
"""


def startup(cache_dir: str, trace: bool = False) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", STARTUP_CODE, cache_dir, "trace" if trace else "time"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def corpora() -> tuple[list[str], list[str]]:
    texts = [json.loads(line)["text"] for line in EVAL.read_text(encoding="utf-8").splitlines() if line.strip()]
    long: list[str] = []
    i = 0
    while len(long) < 400:
        text = ""
        while len(text) < 200:
            text += texts[i % len(texts)] + "，"
            i += 1
        long.append(text[:200])
    return texts, long


def per_second(fn, corpus: list[str], rounds: int, seconds: float) -> float:
    best = 0.0
    for _ in range(rounds):
        start = time.process_time()
        n = 0
        while True:
            for text in corpus:
                fn(text)
            n += len(corpus)
            spent = time.process_time() - start
            if spent >= seconds / rounds:
                break
        best = max(best, n / spent)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per throughput figure")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--startups", type=int, default=3, help="warm start-ups to take the median of")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kpbot-bench-") as tmp:
        cold = startup(tmp)
        warm_runs = [startup(tmp) for _ in range(args.startups)]
        traced = startup(tmp, trace=True)
    warm = {k: statistics.median(r[k] for r in warm_runs) for k in warm_runs[0]}
    print("start-up (fresh interpreter: import jieba + load keywords + build classifier and model)")
    for name, r in (("cold", cold), (f"warm (median of {args.startups})", warm)):
        print(
            f"  {name:<22} total {r['total']:.2f} s   build {r['build']:.2f} s   imports {r['imports']:.2f} s"
        )
    print("memory (warm start, after build)")
    print(
        f"  Python allocations (tracemalloc) {traced['traced_mb']:.1f} MiB, peak {traced['traced_peak_mb']:.1f} MiB;"
        f"   interpreter peak RSS {warm['rss_mb']:.1f} MiB"
    )

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core for the throughput figures

    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    import dataclasses

    from config.keywords import load_keywords
    from handlers.speedups import speedups
    from handlers.triage_setup import build_triage

    with tempfile.TemporaryDirectory(prefix="kpbot-bench-") as tmp:
        classifier = build_triage(load_keywords(), Path(tmp))
    tables_alone = classifier.with_model(None)
    pure = dataclasses.replace(classifier, pure_python=True)
    typical, long = corpora()
    mean_typical = sum(map(len, typical)) / len(typical)
    built = "built" if speedups() is not None else "NOT built: pure Python only"
    print(f"throughput, one core, CPU time, best of {args.rounds} rounds; C speedups {built}")
    for label, corpus in ((f"typical reports (mean {mean_typical:.0f} chars)", typical), ("200-char reports", long)):
        for text in corpus:  # memo warm-up: a running bot has seen its vocabulary
            classifier.classify(text)
        rate = per_second(classifier.classify, corpus, args.rounds, args.seconds)
        base = per_second(lambda t: classifier.tokenizer.lcut(t, HMM=False), corpus, args.rounds, args.seconds)
        tables = per_second(tables_alone.classify, corpus, args.rounds, args.seconds)
        print(
            f"  {label:<32} classify {rate:>8,.0f} reports/s   (tables without the model {tables:>8,.0f}/s;"
            f" jieba lcut alone {base:>8,.0f}/s)"
        )
    for text in long:
        pure.classify(text)
    rate = per_second(pure.classify, long, args.rounds, args.seconds)
    print(f"  {'200-char, without C speedups':<32} classify {rate:>8,.0f} reports/s")
    fresh = classifier.with_overlay(None)
    fresh._memo.clear()
    start = time.process_time()
    for text in long:
        fresh.classify(text)
    print(f"  {'200-char, first sight (cold memo)':<32} classify {len(long) / (time.process_time() - start):>8,.0f} reports/s")


if __name__ == "__main__":
    main()
