#!/usr/bin/env python3
"""Helpers of bench/solver.sh: the data sets, scikit-learn's run, LIBLINEAR's solution
evaluated in xentrain's objective, and the summary table.

  prep FASHION.h5 OUT_DIR            fm10.h5 (the first 12 000 training rows, pixels / 255
                                     as float32) and fm2.h5 + fm2.svm (T-shirt vs shirt, the
                                     same values; LIBSVM text with 9 digits, which float32
                                     values survive exactly)
  sklearn DATA.h5 C THREADS          LogisticRegression(C, lbfgs, tol=1e-4 (its default),
                                     max_iter=10000) on the float32 values as float64; prints
                                     "fit_s nfev F" (F = xentrain's objective at its solution)
  liblinear MODEL DATA.h5 C LOG      F at LIBLINEAR's solution and its passes (1 + CG steps per
                                     iteration, from its log, plus the first evaluation)
  summary RAW.csv                    the medians as a Markdown table

xentrain's objective (docs/solvers.md): F = mean loss + ||W||^2 / (2 C n), n = the rows
(no class weights here), intercepts free: scikit-learn's J = 1/2 ||w||^2 + C sum loss
divided by C n.
"""
import csv
import statistics
import sys
import time

import numpy as np

FM10_ROWS = 12000  # softmax regression's rows (of 54 000): the benchmark fits on 2 shared cores


def load(path):
    import h5py
    with h5py.File(path, "r") as f:
        return f["train/X"][()], f["train/y"][()]


def objective(x, y, coef, icpt, c):
    """xentrain's F at (coef, icpt), float64, from the definitions."""
    x = x.astype(np.float64)
    n = len(y)
    if coef.shape[0] == 1:  # binary: one sigmoid
        z = x @ coef[0] + icpt[0]
        loss = np.sum(np.logaddexp(0.0, z) - y * z)
    else:
        z = x @ coef.T + icpt
        loss = np.sum(np.logaddexp.reduce(z, axis=1) - z[np.arange(n), y])
    return (loss + 0.5 / c * np.sum(coef * coef)) / n


def prep(src, out):
    import h5py
    with h5py.File(src, "r") as f:
        scale = float(f["train/X"].attrs.get("scale", 1.0 / 255.0))
        x = (f["train/X"][()].astype(np.float32) * np.float32(scale)).reshape(-1, 784)
        y = f["train/y"][()].astype(np.int32)
    with h5py.File(out + "/fm10.h5", "w") as f:  # the first FM10_ROWS rows: minutes, not hours
        f["train/X"], f["train/y"] = x[:FM10_ROWS], y[:FM10_ROWS]
    keep = (y == 0) | (y == 6)
    x2, y2 = x[keep], (y[keep] == 6).astype(np.int32)
    with h5py.File(out + "/fm2.h5", "w") as f:
        f["train/X"], f["train/y"] = x2, y2
    with open(out + "/fm2.svm", "w") as f:
        for row, label in zip(x2, y2):
            nz = np.nonzero(row)[0]
            f.write("%d %s\n" % (label, " ".join("%d:%.9g" % (j + 1, row[j]) for j in nz)))


def run_sklearn(path, c, threads):
    import threadpoolctl
    from sklearn.linear_model import _logistic
    from sklearn.linear_model import LogisticRegression
    x, y = load(path)
    calls = []
    minimize = _logistic.optimize.minimize

    def counting(*a, **k):  # scipy's result says how many evaluations lbfgs made
        res = minimize(*a, **k)
        calls.append(res.nfev)
        return res

    _logistic.optimize.minimize = counting
    m = LogisticRegression(C=c, solver="lbfgs", max_iter=10000)
    x64 = x.astype(np.float64)
    with threadpoolctl.threadpool_limits(limits=threads):
        t0 = time.perf_counter()
        m.fit(x64, y)
        fit_s = time.perf_counter() - t0
    icpt = m.intercept_ - (m.intercept_.mean() if len(m.intercept_) > 1 else 0.0)
    print("%.4f %d %.15g" % (fit_s, sum(calls), objective(x, y, m.coef_, icpt, c)))


def liblinear(model, path, c, log):
    x, y = load(path)
    lines = open(model).read().split("\n")
    labels = [int(v) for v in next(l for l in lines if l.startswith("label")).split()[1:]]
    bias = float(next(l for l in lines if l.startswith("bias")).split()[1])
    w = np.array([float(l) for l in lines[lines.index("w") + 1:] if l.strip()])
    sign = 1.0 if labels[0] == 1 else -1.0  # w scores labels[0]
    coef, icpt = sign * w[:784][None, :], np.array([sign * w[784] * bias if bias > 0 else 0.0])
    passes = 1  # f and g at w = 0
    for l in open(log):
        f = l.split()
        if f and f[0] == "iter":
            passes += 1 + int(f[f.index("CG") + 1])
    print("%d %.15g" % (passes, objective(x, y, coef, icpt, c)))


def summary(raw):
    rows = list(csv.DictReader(open(raw)))
    groups = {}
    for r in rows:
        key = (r["data"], r["tool"], r["P"])
        groups.setdefault(key, {}).setdefault(r["metric"], []).append(float(r["value"]))
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in groups.items()}
    print("| data | tool | P | passes to scikit-learn's objective | seconds to it | passes, seconds "
          "to its own stop | objective at its stop |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (data, tool, p), d in sorted(med.items()):
        reach = ("%d" % d["passes_to_target"]) if "passes_to_target" in d else "-"
        reach_s = ("%.2f" % d["seconds_to_target"]) if "seconds_to_target" in d else "-"
        print("| %s | %s | %s | %s | %s | %d, %.2f | %.10g |" % (
            data, tool, p, reach, reach_s, d["passes"], d["seconds"], d["objective"]))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "prep":
        prep(*args)
    elif cmd == "sklearn":
        run_sklearn(args[0], float(args[1]), int(args[2]))
    elif cmd == "liblinear":
        liblinear(args[0], args[1], float(args[2]), args[3])
    elif cmd == "summary":
        summary(args[0])
    else:
        sys.exit("solver_ref.py: unknown command " + cmd)
