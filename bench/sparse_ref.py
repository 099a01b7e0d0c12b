#!/usr/bin/env python3
"""Helpers of bench/sparse.sh: LIBSVM text from a CSR file, the expected memory per rank,
the crossover data sets, LIBLINEAR's binary solution in xentrain's objective, a per-rank
peak-memory wrapper and the summary tables.

  info DATA.h5 SPLIT                 "rows features nnz classes" of a split (CSR X)
  svm DATA.h5 SPLIT OUT.svm          the split as LIBSVM text (1-based indices, values with
                                     9 digits, which float32 values survive exactly)
  expect DATA.h5 P MODEL OPT         per rank r of P, the bytes of its CSR shard (indptr as
                                     size_t, indices int32, values float32, y int32) +
                                     parameters + optimiser state, float32 (below)
  density N D K DENSITY SEED CSR.h5 DENSE.h5
                                     the same N rows of D features stored as CSR (an h5ad
                                     csr_matrix group) and dense (X float32 (N, D)), y (N,)
                                     int32: about DENSITY D non-zeros per row (1 to 2 DENSITY D
                                     - 1, uniform), columns drawn without replacement with
                                     Zipf(1.1) weights, values uniform in [0.5, 1.5), the class
                                     of the best of K random linear rules; prints "density
                                     nnz_per_row"
  objective MODEL DATA.h5 C LOG      LIBLINEAR's binary model (-B 1) in xentrain's objective
                                     and its passes (1 + CG steps per iteration, from its log,
                                     plus the first evaluation): "passes F"
  rss PREFIX COMMAND...              runs COMMAND, forwards INT, TERM, USR1 and USR2 to it, and
                                     writes to PREFIX.RANK (the MPI rank from the environment)
                                     its peak resident set in KiB when the first signal came
                                     (VmHWM: before the checkpoint a stop writes), or at its end
                                     without a signal, then at its end (wait4's ru_maxrss);
                                     exits with its status
  summary RAW.csv                    the medians as Markdown tables

The shard rule is shard.h's: S = min(64, N) virtual shards, shard s holds rows [s N / S,
(s + 1) N / S), rank r owns the shards [r S / P, (r + 1) S / P). Optimiser state, in
parameter-sized float32 vectors: sgd (its defaults on CSR rows: momentum 0) and sgd-plain
(momentum 0, lr 8) none; newton the gradient and the 4 vectors of CG (s, r, d,
Hd): 5; lbfgs the gradient, the direction and the 2 x 10 history pairs (optim.history = 10):
22. The gradient buffer of SGD, reduction buffers and the process itself (MPI, HDF5, BLAS)
are not in it: the ratio shows them.

xentrain's objective (docs/solvers.md): F = mean loss + ||W||^2 / (2 C n), intercepts free.
"""
import csv
import os
import signal
import statistics
import subprocess
import sys

import numpy as np

HISTORY = 10  # optim.history's default


def read_csr(path, split):
    import h5py
    with h5py.File(path, "r") as f:
        g = f[split + "/X"]
        shape = g.attrs["shape"] if "shape" in g.attrs else g.attrs["h5sparse_shape"]
        return (g["indptr"][()].astype(np.int64), g["indices"][()], g["data"][()],
                f[split + "/y"][()].astype(np.int64), int(shape[1]))


def info(path, split):
    p, _, _, y, d = read_csr(path, split)
    print("%d %d %d %d" % (len(y), d, p[-1], int(y.max()) + 1))


def svm(path, split, out):
    p, c, v, y, _ = read_csr(path, split)
    with open(out, "w") as f:
        for i in range(len(y)):
            a, b = p[i], p[i + 1]
            f.write("%d %s\n" % (y[i], " ".join("%d:%.9g" % (j + 1, x)
                                                for j, x in zip(c[a:b], v[a:b]))))


def expect(path, nranks, model, opt):
    p, _, _, y, d = read_csr(path, "train")
    n, k = len(y), int(y.max()) + 1
    params = d + 1 if model == "logistic" else k * d + k
    vectors = {"sgd": 0.0, "sgd-plain": 0.0, "newton": 5.0,
               "lbfgs": 2.0 + 2 * HISTORY}[opt]
    s = min(64, n)
    out = []
    for r in range(nranks):
        lo, hi = r * s // nranks * n // s, (r + 1) * s // nranks * n // s
        nnz = int(p[hi] - p[lo])
        shard = (hi - lo + 1) * 8 + nnz * 8 + (hi - lo) * 4
        out.append(shard + params * 4 * (1.0 + vectors))
    print(" ".join("%d" % b for b in out))


def density(n, d, k, dens, seed, csr_out, dense_out):
    import h5py
    rng = np.random.default_rng(seed)
    m = max(1, int(round(dens * d)))
    wz = 1.0 / np.arange(1, d + 1) ** 1.1  # column j's weight: a few frequent, many rare
    rules = rng.standard_normal((k, d)) / np.sqrt(m)
    want = np.minimum(rng.integers(1, 2 * m, size=n), d)
    ptr = np.zeros(n + 1, np.int64)
    ptr[1:] = np.cumsum(want)
    idx = np.empty(ptr[-1], np.int32)
    val = rng.uniform(0.5, 1.5, size=ptr[-1]).astype(np.float32)
    x = np.zeros((n, d), np.float32)
    for lo in range(0, n, 512):  # exponential race: the `want` smallest E / w, per row
        hi = min(n, lo + 512)
        keys = rng.exponential(size=(hi - lo, d)) / wz
        order = np.argsort(keys, axis=1)
        for i in range(lo, hi):
            cols = np.sort(order[i - lo, :want[i]])
            idx[ptr[i]:ptr[i + 1]] = cols
            x[i, cols] = val[ptr[i]:ptr[i + 1]]
    y = np.argmax(x.astype(np.float64) @ rules.T, axis=1).astype(np.int32)
    with h5py.File(csr_out, "w") as f:
        g = f.create_group("train/X")
        g.attrs["encoding-type"], g.attrs["encoding-version"] = "csr_matrix", "0.1.0"
        g.attrs["shape"] = np.array([n, d], np.int64)
        g["indptr"], g["indices"], g["data"] = ptr, idx, val
        f["train/y"] = y
    with h5py.File(dense_out, "w") as f:
        f["train/X"], f["train/y"] = x, y
    print("%.6g %.2f" % (ptr[-1] / (n * d), ptr[-1] / n))


def objective(model, path, c, log):
    from scipy.sparse import csr_matrix
    p, idx, val, y, d = read_csr(path, "train")
    x = csr_matrix((val.astype(np.float64), idx, p), shape=(len(y), d))
    lines = open(model).read().split("\n")
    head = dict(l.split(None, 1) for l in lines[:lines.index("w")] if " " in l)
    labels = [int(v) for v in head["label"].split()]
    nf, bias = int(head["nr_feature"]), float(head["bias"])
    w = np.array([float(l) for l in lines[lines.index("w") + 1:] if l.strip()])
    sign = 1.0 if labels[0] == 1 else -1.0  # w scores labels[0]
    coef = np.zeros(d)
    coef[:nf] = sign * w[:nf]  # features beyond the last one seen in the file: weight 0
    b = sign * w[nf] * bias if bias > 0 else 0.0
    z = x @ coef + b
    f = (np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 / c * coef @ coef) / len(y)
    passes = 1  # f and g at w = 0
    for l in open(log):
        t = l.split()
        if t and t[0] == "iter" and "CG" in t:
            passes += 1 + int(t[t.index("CG") + 1])
    print("%d %.15g" % (passes, f))


def hwm(pid):
    """The process's peak resident set so far (VmHWM, KiB), 0 when unknown."""
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss(prefix, cmd):
    rank = next((os.environ[v] for v in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
                 if v in os.environ), "0")
    held, child, at_signal = [], [], []

    def forward(num, _frame):
        if child:
            if not at_signal:
                at_signal.append(hwm(child[0].pid))
            child[0].send_signal(num)
        else:
            held.append(num)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, forward)
    child.append(subprocess.Popen(cmd))
    for num in held:
        child[0].send_signal(num)
    _, status, usage = os.wait4(child[0].pid, 0)
    with open("%s.%s" % (prefix, rank), "w") as f:
        f.write("%d %d\n" % (at_signal[0] if at_signal and at_signal[0] else usage.ru_maxrss,
                             usage.ru_maxrss))
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 128 - code)


def medians(rows):
    groups = {}
    for r in rows:
        key = (r["part"], r["data"], r["tool"], r["P"])
        groups.setdefault(key, {}).setdefault(r["metric"], []).append(float(r["value"]))
    return {k: {m: statistics.median(v) for m, v in d.items()} for k, d in groups.items()}, groups


def fmt_mib(b):
    return "%.1f" % (b / 2**20)


def summary_27(med, groups, facts):
    ll = med.get(("27", "softmax", "liblinear-train -s 7", "1"))
    if not ll:
        return
    data = facts["27"]
    print("**Issue 27: softmax on CSR against `liblinear-train -s 7`** (%d training rows, %d test "
          "rows, %d features, %.1f non-zeros per row, %d classes, Zipf(1.1) feature frequency; "
          "target: liblinear's test accuracy %.4f)" % (
              data["train_rows"], data["test_rows"], data["features"], data["nnz_per_row"],
              data["classes"], ll["test_accuracy"]))
    print()
    print("| tool | P | runs that reached the target | epochs (passes) to it | training "
          "seconds to it | / liblinear's seconds | test accuracy at the stop (epochs run) "
          "| peak RSS per rank, MiB | expected per rank, MiB | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("| liblinear-train -s 7 (%.2f s with reading the file and writing the model) | 1 | - "
          "| - | %.2f | 1 | %.4f | %.1f | - | - |" % (
              ll["seconds_total"], ll["seconds"], ll["test_accuracy"], ll["rss_kib"] / 1024))
    verdict = []
    for opt in ("sgd", "sgd-plain", "newton", "lbfgs"):
        for p in ("1", "2"):
            key = ("27", "softmax", "xentrain " + opt, p)
            if key not in med:
                continue
            d, g = med[key], groups[key]
            hit = int(sum(g["reached"]))
            runs = len(g["reached"])
            if hit:
                to = "%d" % d["epochs_to_target"]
                if not opt.startswith("sgd"):
                    to += " (%d)" % d["passes_to_target"]
                secs = "%.2f" % d["seconds_to_target"]
                ratio = "%.2f" % (d["seconds_to_target"] / ll["seconds"])
            else:  # not within the run: its training seconds bound the time to it
                to = "-"
                secs = "> %.2f" % d["seconds_run"]
                ratio = "> %.2f" % (d["seconds_run"] / ll["seconds"])
            print("| xentrain %s | %s | %d of %d | %s | %s | %s | %.4f (%d) | %.1f | %s | %.2f |" % (
                opt, p, hit, runs, to, secs, ratio, d["final_accuracy"], d["epochs_run"],
                d["rss_kib"] / 1024, fmt_mib(d["expected_bytes"]), d["rss_ratio"]))
            mem = "met" if d["rss_ratio"] <= 3 else "not met"
            verdict.append("memory <= 3x expected, %s at P = %s: %s (%.2fx)" % (
                opt, p, mem, d["rss_ratio"]))
            if p == "2":
                if hit == runs:
                    t = "met" if d["seconds_to_target"] <= ll["seconds"] / 4 else "not met"
                    verdict.append("time to liblinear's accuracy at P = 2 <= 1/4 of liblinear's, "
                                   "%s: %s (%.2fx liblinear's time)" % (
                                       opt, t, d["seconds_to_target"] / ll["seconds"]))
                else:
                    verdict.append("time to liblinear's accuracy at P = 2 <= 1/4 of liblinear's, "
                                   "%s: not met (reached in %d of %d runs)" % (opt, hit, runs))
    base = med.get(("27", "tiny", "xentrain sgd", "2"))
    print()
    if base:
        print("A tiny run for scale (1 000 x 100 CSR rows, P = 2, one epoch): %.1f MiB per rank "
              "(MPI, HDF5, BLAS and the code)." % (base["rss_kib"] / 1024))
        print()
    print("Targets (issue 27):")
    print()
    for v in verdict:
        print("- " + v)
    print()


def summary_density(med, facts):
    rows = sorted((float(k[1]), k[2], d) for k, d in med.items() if k[0] == "density")
    if not rows:
        return
    f = facts["density"]
    print("**Crossover: CSR against dense X** (%d rows, %d features, %d classes, softmax, SGD "
          "at lr 0.1 without momentum, data.normalize = none, P = 1, seconds per epoch: the mean "
          "of epochs 2 to %d of each run)" % (f["rows"], f["features"], f["classes"], f["epochs"]))
    print()
    print("| density asked | density | non-zeros per row | CSR, s/epoch | dense, s/epoch "
          "| dense / CSR |")
    print("| --- | --- | --- | --- | --- | --- |")
    by = {}
    for dens, tool, d in rows:
        by.setdefault(dens, {})[tool] = d
    ratio = {}
    for dens in sorted(by):
        c, dn = by[dens].get("csr"), by[dens].get("dense")
        if not c or not dn:
            continue
        ratio[dens] = dn["s_per_epoch"] / c["s_per_epoch"]
        print("| %g%% | %.3g%% | %.1f | %.4f | %.4f | %.2f |" % (
            dens * 100, c["density"] * 100, c["nnz_per_row"], c["s_per_epoch"],
            dn["s_per_epoch"], ratio[dens]))
    cross = None  # the lowest density from which dense is faster at every density measured
    for dens in sorted(ratio, reverse=True):
        if ratio[dens] >= 1:
            break
        cross = dens
    print()
    if cross is None:
        print("Dense X is not faster than CSR at the highest density measured.")
    else:
        below = [d for d in ratio if d < cross]
        print("Dense X is faster than CSR from %g%% on (every density measured from there)%s."
              % (cross * 100, ", CSR at %g%%" % (max(below) * 100) if below else ""))
    print()


def summary_28(med, facts):
    keys = sorted(k for k in med if k[0] == "28")
    if not keys:
        return
    f = facts["28"]
    tgt = med.get(("28", "binary", "liblinear-train -s 0 -e 0.0001", "1"))
    print("**Issue 28: full-batch solvers on sparse binary data against `liblinear-train -s 0 "
          "-c 1`** (%d rows, %d features, %.1f non-zeros per row; C = 1; LIBLINEAR's -B 1 bias is "
          "penalised, so its solutions are evaluated in xentrain's objective; the target is the "
          "objective of its -e 0.0001 solution%s)" % (
              f["train_rows"], f["features"], f["nnz_per_row"],
              ", %.10g" % tgt["objective"] if tgt else ""))
    print()
    print("| tool | P | passes to LIBLINEAR's -e 0.0001 objective | seconds to it | passes, "
          "seconds to its own stop | objective at its stop |")
    print("| --- | --- | --- | --- | --- | --- |")
    for k in keys:
        d = med[k]
        reach = ("%d" % d["passes_to_target"]) if "passes_to_target" in d else "-"
        reach_s = ("%.2f" % d["seconds_to_target"]) if "seconds_to_target" in d else "-"
        print("| %s | %s | %s | %s | %d, %.2f | %.10g |" % (
            k[2], k[3], reach, reach_s, d["passes"], d["seconds"], d["objective"]))
    print()


def summary(raw):
    rows = list(csv.DictReader(open(raw)))
    facts = {}
    for r in rows:
        if r["rep"] == "0":
            facts.setdefault(r["part"], {})[r["metric"]] = float(r["value"])
    med, groups = medians([r for r in rows if r["rep"] != "0"])
    summary_27(med, groups, facts)
    summary_density(med, facts)
    summary_28(med, facts)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "info":
        info(*args)
    elif cmd == "svm":
        svm(*args)
    elif cmd == "expect":
        expect(args[0], int(args[1]), args[2], args[3])
    elif cmd == "density":
        density(int(args[0]), int(args[1]), int(args[2]), float(args[3]), int(args[4]),
                args[5], args[6])
    elif cmd == "objective":
        objective(args[0], args[1], float(args[2]), args[3])
    elif cmd == "rss":
        rss(args[0], args[1:])
    elif cmd == "summary":
        summary(args[0])
    else:
        sys.exit("sparse_ref.py: unknown command " + cmd)
