#!/usr/bin/python3
"""xentrain's defaults against scikit-learn's on the same rows (issue 29).

For each data set: a stratified split (60 % train, 20 % val, 20 % test, fixed seed) written as
HDF5; scikit-learn's defaults (StandardScaler + LogisticRegression(); StandardScaler +
MLPClassifier()) fit on the training rows; xentrain trained with a config that names only the
splits and the model type (and model.hidden = 100 for the MLP, scikit-learn's default width),
plus any --set given with --xt-set (to compare candidate defaults). Prints one CSV row per
(data set, model, system) with the test accuracy.

Usage: bench/defaults.py XENTRAIN OUT_DIR [--sets iris,wine,...] [--models linear,mlp]
                         [--ranks N] [--xt-set KEY=VALUE]... [--no-sklearn]
Data sets: iris, wine, breast_cancer, digits (scikit-learn's bundled ones), synthK (20,000 rows,
16 features, K classes from make_classification, shaped like UCI letter), fashion (Debian's
Fashion-MNIST through scripts/prepare-fashion-mnist.sh; slow in scikit-learn).
"""
import argparse
import csv
import os
import re
import subprocess
import sys
import time

import h5py
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    from sklearn import datasets
    if name == "fashion":
        path = os.path.join(ROOT, "data", "fashion-mnist.h5")
        with h5py.File(path, "r") as f:
            X = np.concatenate([f["train/X"][()], f["val/X"][()], f["test/X"][()]]).astype(np.float32)
            y = np.concatenate([f["train/y"][()], f["val/y"][()], f["test/y"][()]])
        return X, y
    if name.startswith("synth"):  # synthK: 20,000 rows, 16 features, K classes (letter-like)
        from sklearn.datasets import make_classification
        X, y = make_classification(n_samples=20000, n_features=16, n_informative=14,
                                   n_redundant=2, n_classes=int(name[5:]), n_clusters_per_class=2,
                                   class_sep=1.5, random_state=7)
        return X.astype(np.float32), y
    loader = {"iris": datasets.load_iris, "wine": datasets.load_wine,
              "breast_cancer": datasets.load_breast_cancer, "digits": datasets.load_digits}[name]
    X, y = loader(return_X_y=True)
    return X.astype(np.float32), y


def split(X, y, seed=1):
    """Stratified 60/20/20 split (scikit-learn's train_test_split twice)."""
    from sklearn.model_selection import train_test_split
    if len(y) > 20000:  # Fashion-MNIST: its own split (the last 10000 rows are its test set)
        n = len(y) - 10000
        return (X[:n - 6000], y[:n - 6000]), (X[n - 6000:n], y[n - 6000:n]), (X[n:], y[n:])
    Xa, Xt, ya, yt = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    Xr, Xv, yr, yv = train_test_split(Xa, ya, test_size=0.25, stratify=ya, random_state=seed)
    return (Xr, yr), (Xv, yv), (Xt, yt)


def write_h5(path, parts):
    with h5py.File(path, "w") as f:
        for g, (X, y) in zip(("train", "val", "test"), parts):
            f.create_dataset(f"{g}/X", data=X)
            f.create_dataset(f"{g}/y", data=y.astype(np.int32))


def sklearn_acc(model, parts):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    import warnings
    (Xr, yr), _, (Xt, yt) = parts
    est = LogisticRegression() if model == "linear" else MLPClassifier(random_state=1)
    clf = make_pipeline(StandardScaler(), est)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Xr, yr)
    return float((clf.predict(Xt) == yt).mean()), time.time() - t0


def xentrain_acc(xt, model, k, h5, run, ranks, sets):
    mtype = ("logistic" if k == 2 else "softmax") if model == "linear" else "mlp"
    cfg = run + ".ini"
    with open(cfg, "w") as f:
        f.write(f"[data]\ntrain = {h5}:/train\nval = {h5}:/val\ntest = {h5}:/test\n"
                f"[model]\ntype = {mtype}\n" + ("hidden = 100\n" if model == "mlp" else ""))
    cmd = [os.path.join(ROOT, "scripts", "xt-mpirun"), "-np", str(ranks), xt, "train", cfg,
           "--set", f"run.dir={run}", "--set", "train.resume=never"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.time() - t0
    text = out.stdout + out.stderr
    with open(run + ".log", "w") as f:
        f.write(text)
    acc = re.findall(r"^accuracy +([0-9.]+)", text, re.M)
    if out.returncode != 0 or not acc:
        return None, dt, 0
    with open(os.path.join(run, "metrics.csv")) as f:
        epochs = sum(1 for _ in f) - 1
    return float(acc[-1]), dt, epochs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("xentrain")
    ap.add_argument("out")
    ap.add_argument("--sets", default="iris,wine,breast_cancer,digits")
    ap.add_argument("--models", default="linear,mlp")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--xt-set", action="append", default=[])
    ap.add_argument("--no-sklearn", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    w = csv.writer(sys.stdout)
    w.writerow(["data", "rows", "features", "classes", "model", "system", "test_accuracy",
                "seconds", "epochs"])
    for name in a.sets.split(","):
        X, y = load(name)
        parts = split(X, y)
        h5 = os.path.join(a.out, name + ".h5")
        write_h5(h5, parts)
        k = len(np.unique(y))
        for model in a.models.split(","):
            if not a.no_sklearn:
                acc, dt = sklearn_acc(model, parts)
                w.writerow([name, len(y), X.shape[1], k, model, "scikit-learn", f"{acc:.4f}",
                            f"{dt:.1f}", ""])
            acc, dt, ep = xentrain_acc(a.xentrain, model, k, h5, os.path.join(a.out, f"{name}-{model}"),
                                       a.ranks, a.xt_set)
            w.writerow([name, len(y), X.shape[1], k, model, "xentrain",
                        "failed" if acc is None else f"{acc:.4f}", f"{dt:.1f}", ep])
            sys.stdout.flush()


if __name__ == "__main__":
    main()
