#!/usr/bin/env bash
# Draws training and validation loss against epochs from RUN_DIR/metrics.csv into
# RUN_DIR/loss.png, and marks the epoch model.h5 holds, as model.h5's own epoch
# attribute says (with a validation split: the best epoch; see the README), and the
# best validation epoch from metrics.csv's best column when the two differ.
# Usage: scripts/plot_metrics.sh RUN_DIR
set -euo pipefail
dir=${1:?usage: plot_metrics.sh RUN_DIR}
csv="$dir/metrics.csv"
[ -s "$csv" ] || { echo "plot_metrics: $csv is missing or empty" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot_metrics: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
# The epoch model.h5 holds: its /model epoch attribute (needs h5dump, hdf5-tools).
held=""
if [ -s "$dir/model.h5" ] && command -v h5dump >/dev/null; then
  held=$(h5dump -a /model/epoch "$dir/model.h5" 2>/dev/null | sed -n 's/^ *(0): *\([0-9][0-9]*\).*/\1/p' | head -1)
fi
# The best epoch by the metrics: the last row whose best column is 1, with validation.
best=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                c["best"] && $c["best"] == 1 && $3 != "" { b = $1 } END { print b }' "$csv")
last=$(awk -F, 'NR > 1 { e = $1 } END { print e }' "$csv")
[ "$best" = "$held" ] && best=""
# labels on the side with more room
just=left off=1
if [ -n "$held" ] && [ $((2 * held)) -gt "$last" ]; then just=right off=-1; fi
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
held = "$held"
best = "$best"
if (held ne "") {
  set arrow 1 from first held, graph 0 to first held, graph 1 nohead dt 2 lw 2 lc rgb "#2ca02c"
  set label 1 sprintf("model.h5: epoch %s", held) at first held, graph 0.55 $just offset $off,0 tc rgb "#2ca02c"
}
if (best ne "") {
  set arrow 2 from first best, graph 0 to first best, graph 1 nohead dt 3 lw 1 lc rgb "#9467bd"
  set label 2 sprintf("best validation: epoch %s", best) at first best, graph 0.45 left offset 1,0 tc rgb "#9467bd"
}
plot "$csv" every ::1 using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4" title "training loss", \
     "$csv" every ::1 using 1:(strcol(3) eq "" ? NaN : \$3) with linespoints lw 2 pt 5 ps 0.6 lc rgb "#d62728" title "validation loss"
GP
echo "plot: $out${held:+ (model.h5 holds epoch $held)}${best:+; best validation epoch $best}"
