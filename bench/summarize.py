#!/usr/bin/python3
"""Medians of bench/run.sh's raw.csv -> the table (stdout) and results.csv."""
import csv
import statistics
import sys
from collections import defaultdict

raw, out = sys.argv[1], sys.argv[2]
vals = defaultdict(list)
reps = set()
with open(raw) as f:
    for r in csv.DictReader(f):
        if r["value"]:
            vals[(r["what"], r["model"], r["P"], r["metric"])].append(float(r["value"]))
            reps.add(r["rep"])
med = {k: statistics.median(v) for k, v in vals.items()}
n_reps = len(reps)


def g(what, model, P, metric):
    return med.get((what, model, str(P), metric))


rows = []  # metric, xentrain, reference, ratio, bound, fraction, target, met


def add(name, x, ref=None, bound=None, target="", ok=None, unit=""):
    ratio = x / ref if x is not None and ref else None
    frac = x / bound if x is not None and bound else None
    rows.append([name, x, ref, ratio, bound, frac, target, "" if ok is None else ("yes" if ok else "NO"), unit])


for model, label in (("mlp", "MLP 784-256-128-10"), ("softmax", "softmax 784-10")):
    bound = g("limits", model, 2, "gemm_bound_samples_per_s")
    x1 = g(f"xentrain_{model}", model, 1, "samples_per_s")
    t1 = g(f"torch_{model}", model, 1, "samples_per_s")
    x2 = g(f"xentrain_{model}", model, 2, "samples_per_s")
    t2 = g(f"torch_ddp_{model}", model, 2, "samples_per_s")
    tgt1 = 1.4 if model == "mlp" else 3.0
    add(f"{label}, P=1, samples/s", x1, t1, bound, f">= {tgt1}x PyTorch" + (", >= 0.85 of bound" if model == "mlp" else ""),
        None if x1 is None or t1 is None else (x1 / t1 >= tgt1 and (model != "mlp" or x1 / bound >= 0.85)))
    add(f"{label}, P=2 (128/rank), samples/s", x2, t2, 2 * bound if bound else None,
        ">= 3x DDP" if model == "mlp" else "", None if model != "mlp" or x2 is None or t2 is None else x2 / t2 >= 3.0)
    for P in (1, 2):
        w = f"xentrain_{model}"
        parts = ["forward_ms", "loss_ms", "backward_ms", "allreduce_ms", "optimizer_ms", "gather_ms", "step_ms"]
        split = ", ".join(f"{p[:-3]} {g(w, model, P, p):.3f}" for p in parts if g(w, model, P, p) is not None)
        rows.append([f"{label}, P={P}, per step (ms)", split, "", "", "", "", "", "", "ms"])
    if model == "mlp":
        x1b = g("xentrain_mlp_b256", model, 1, "samples_per_s")
        eff = x2 / (2 * x1b) if x2 and x1b else None
        add("MLP strong-scaling efficiency 1 -> 2 ranks, global batch 256", eff, None, None, ">= 0.85",
            None if eff is None else eff >= 0.85)
        ar, st = g("xentrain_mlp", model, 2, "allreduce_ms"), g("xentrain_mlp", model, 2, "step_ms")
        frac = ar / st if ar and st else None
        add("MLP P=2 allreduce share of the step (exposed, not overlapped)", frac, None, None, "<= 0.15",
            None if frac is None else frac <= 0.15)
        raw_ar = g("limits", model, 2, "allreduce_s")
        add("MLP gradient allreduce at P=2 (ms): in training vs raw MPI_Allreduce", ar,
            raw_ar * 1e3 if raw_ar else None, None, "", None, "ms")
        su, rd = g("xentrain_mlp", model, 2, "startup_s"), g("limits", model, 2, "read_s")
        add("start-up at P=2 (s, MPI init + data + broadcast) vs 1 s + shard read time", su, None, 1.0 + rd if rd else None, "< 1 s + read",
            None if su is None or rd is None else su < 1.0 + rd, "s")
gb = g("limits", "mlp", 2, "gemm_gflops")
add("single-thread sgemm at the MLP's shapes (GFLOP/s)", gb, None, None, "", None, "GFLOP/s")
for what, bpp, label in (("memory_compact", 1, "uint8 in memory (default)"),
                         ("memory_float", 4, "float32 in memory (data.compact = false)")):
    m1, m2 = g(what, "softmax", 1, "peak_rss_mib"), g(what, "softmax", 2, "peak_rss_mib")
    shard = 54000 * 784 * bpp / 2 / 2**20
    add(f"peak RSS per rank at P=2 (MiB) vs shard + 64 MiB, {label}", m2, None, shard + 64,
        "<= shard + 64 MiB", None if m2 is None else m2 <= shard + 64, "MiB")
    if m1 and m2:
        add(f"largest-rank peak RSS P=2 / P=1, {label}", m2 / m1, None, None,
            "<= 0.65" if bpp == 4 else "", m2 / m1 <= 0.65 if bpp == 4 else None)


def fmt(v):
    if v is None or v == "":
        return ""
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


hdr = ["measure", "xentrain", "PyTorch / ref", "ratio", "bound", "of bound", "target", "met"]
table = [hdr] + [[r[0], fmt(r[1]), fmt(r[2]), fmt(r[3]), fmt(r[4]), fmt(r[5]), r[6], r[7]] for r in rows]
print(f"\nmedians over {n_reps} repetition(s) (xentrain: epochs 2 and 3 of each run)")
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for r in table[1:]:
    print("| " + " | ".join(r) + " |")
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["metric", "xentrain", "reference", "ratio", "bound", "fraction_of_bound", "target", "met", "unit"])
    for r in rows:
        w.writerow(r)
print(f"\nwrote {out}")
