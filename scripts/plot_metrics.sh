#!/usr/bin/env bash
# Draws training and validation loss against epochs from RUN_DIR/metrics.csv into
# RUN_DIR/loss.png, and marks the epoch whose model model.h5 keeps (the lowest
# validation loss, where early stopping chose the model).
# Usage: scripts/plot_metrics.sh RUN_DIR
set -euo pipefail
dir=${1:?usage: plot_metrics.sh RUN_DIR}
csv="$dir/metrics.csv"
[ -s "$csv" ] || { echo "plot_metrics: $csv is missing or empty" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot_metrics: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
# The best epoch: the lowest val_loss (column 3); none when there is no validation.
best=$(awk -F, 'NR > 1 && $3 != "" && $3 != "nan" { if (b == "" || $3 < v) { v = $3; b = $1 } } END { print b }' "$csv")
last=$(awk -F, 'NR > 1 { e = $1 } END { print e }' "$csv")
out="$dir/loss.png"
gnuplot <<GP
set terminal pngcairo size 900,560 enhanced font "DejaVu Sans,11"
set output "$out"
set datafile separator ","
set key top right
set grid
set xlabel "epoch"
set ylabel "cross-entropy loss"
set title "Training vs validation loss ($dir)" noenhanced
set xrange [0.5:$last + 0.5]
best = "$best"
if (best ne "") {
  set arrow 1 from first best, graph 0 to first best, graph 1 nohead dt 2 lw 2 lc rgb "#2ca02c"
  if (best + 0 > $last / 2.0) {
    set label 1 sprintf("best epoch %s (model.h5)", best) at first best, graph 0.5 right offset -1,0 tc rgb "#2ca02c"
  } else {
    set label 1 sprintf("best epoch %s (model.h5)", best) at first best, graph 0.5 left offset 1,0 tc rgb "#2ca02c"
  }
}
plot "$csv" every ::1 using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4" title "training loss", \
     "$csv" every ::1 using 1:(strcol(3) eq "" ? NaN : \$3) with linespoints lw 2 pt 5 ps 0.6 lc rgb "#d62728" title "validation loss"
GP
echo "plot: $out${best:+ (best epoch $best)}"
