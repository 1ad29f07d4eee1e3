"""Bar charts of benchmark figures with gnuplot (Debian gnuplot-nox), shared
by bench/pool_report.py and bench/ratio_plot.py."""
import os
import subprocess
import sys


def bar_chart(bars, output, title, ylabel, logscale=True, fmt="%.2f", reference=None):
    """bars: [(label, value)]; writes the PNG `output`. reference: a value
    drawn as a dashed line (1.0 for ratios: below it concur is faster)."""
    dat = os.path.splitext(output)[0] + ".dat"
    dat = os.path.join("bench", "results", os.path.basename(dat))
    os.makedirs(os.path.dirname(dat), exist_ok=True)
    with open(dat, "w") as f:
        for i, (label, value) in enumerate(bars):
            f.write(f'{i} "{label}" {value:.6g}\n')
    line = ""
    if reference is not None:
        line = f', {reference} with lines dt 2 lc rgb "#aa3333" title "{reference:g}"'
    script = f"""
set terminal pngcairo size 1100,620 font ",10" noenhanced
set output "{output}"
set bmargin 14
set rmargin 22
set title "{title}"
set style fill solid 0.8
set boxwidth 0.6
{"set logscale y" if logscale else ""}
set ylabel "{ylabel}"
set grid ytics
set xtics rotate by -25
set key top left
set xrange [-0.6:{len(bars) - 0.4}]
plot "{dat}" using 1:3:xtic(2) with boxes lc rgb "#4477aa" notitle, \\
     "" using 1:3:(sprintf("{fmt}", $3)) with labels offset 0,0.8 notitle{line}
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
        print(f"wrote {output}")
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"gnuplot failed: {e}", file=sys.stderr)
