"""The timeline of an experiment as a PNG: what its probes saw around its faults.

One figure, panels sharing the time axis (seconds since the experiment's start),
only those with data:

  1. loss / failure in percent per one-second bin (icmp, udp, tcp_connect, command);
  2. round-trip and connect times in ms, one point per answered sample
     (log scale when they span more than two decades);
  3. throughput in Mbit/s from the tcp_transfer probes' interval samples.

Every panel shades each fault's window (as actually in place) in its own colour;
the phases (steady state before, faults, steady state after) are thin vertical
separators labelled at the top.

The data reductions (binning, scale choice, spans) are pure functions below;
matplotlib is imported only inside `timeline`/`figure` (it costs a few tenths of
a second that the other commands must not pay), and draws with Agg, no display.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from pathlib import Path

from ..core.output import write_output

BIN_S = 1.0            # width of a loss bin, seconds
LOG_DECADES = 2.0      # more than this many decades of RTT: log scale
SIZE_IN = (11.0, 7.0)
DPI = 100
NAME_MAX = 36          # characters of a probe name in a legend
LABEL_MAX = 100        # characters of a window or phase label
WINDOW_LEGEND_MAX = 8  # windows named in the legend (the rest counted)

FAILURE_KINDS = ("icmp", "udp", "tcp_connect", "command")
LATENCY_FIELD = {"icmp": "rtt_ms", "udp": "rtt_ms", "tcp_connect": "connect_ms"}

# Lines (probes) and shades (fault windows): saturated vs. light, distinct hues.
PROBE_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf",
                 "#7f7f7f", "#bcbd22", "#e377c2", "#000080", "#006400")
WINDOW_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                  "#bcbd22", "#17becf", "#7f7f7f")
WINDOW_ALPHA = 0.18
PHASE_COLOUR = "#404040"


# --- pure reductions ------------------------------------------------------------------

def _number(value) -> float | None:
    """A finite float, or None (bools, strings, NaN, inf and None are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _times(samples) -> list:
    return [t for t in (_number(s.get("t")) for s in samples if isinstance(s, dict)) if t is not None]


def failure_bins(samples, origin: float, width: float = BIN_S) -> list:
    """[(bin start in s since origin, percent not ok, samples in bin)], in time
    order, one entry per bin that has samples. A sample without a time is
    skipped; one without a true "ok" counts as a failure. Final or interval
    samples of a transfer (with "done" or "mbit") are not attempts and skipped."""
    counts: dict = {}
    for sample in samples:
        if not isinstance(sample, dict) or sample.get("done") or "mbit" in sample:
            continue
        t = _number(sample.get("t"))
        if t is None:
            continue
        index = math.floor((t - origin) / width)
        total, failed = counts.get(index, (0, 0))
        counts[index] = (total + 1, failed + (sample.get("ok") is not True))
    return [(index * width, 100.0 * failed / total, total)
            for index, (total, failed) in sorted(counts.items())]


def gapped(points: list, width: float = BIN_S) -> tuple:
    """(xs, ys) for a line through the bins' centres that breaks (a NaN) where
    bins are missing, so a line never bridges seconds without samples."""
    xs, ys = [], []
    previous = None
    for start, percent, _count in points:
        if previous is not None and start - previous > width * 1.5:
            xs.append(math.nan)
            ys.append(math.nan)
        xs.append(start + width / 2)
        ys.append(percent)
        previous = start
    return xs, ys


def latency_points(kind: str, samples, origin: float) -> tuple:
    """(xs, ys): seconds since origin and ms for each answered sample that has a
    time (icmp/udp rtt_ms, tcp_connect connect_ms); nothing for other kinds."""
    field = LATENCY_FIELD.get(kind)
    xs, ys = [], []
    if field is None:
        return xs, ys
    for sample in samples:
        if not isinstance(sample, dict) or sample.get("ok") is not True:
            continue
        t, value = _number(sample.get("t")), _number(sample.get(field))
        if t is not None and value is not None:
            xs.append(t - origin)
            ys.append(value)
    return xs, ys


def use_log_scale(values, decades: float = LOG_DECADES) -> bool:
    """Whether the positive values span more than `decades` decades."""
    positive = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if len(positive) < 2:
        return False
    return max(positive) / min(positive) > 10 ** decades


def throughput_points(samples, origin: float) -> tuple:
    """(xs, ys, final): the interval samples' seconds since origin and Mbit/s, and
    the final sample (a dict with "done") or None."""
    xs, ys, final = [], [], None
    for sample in samples:
        if not isinstance(sample, dict):
            continue
        if sample.get("done"):
            final = sample
            continue
        t, mbit = _number(sample.get("t")), _number(sample.get("mbit"))
        if t is not None and mbit is not None:
            xs.append(t - origin)
            ys.append(mbit)
    return xs, ys, final


def last_time(series, spans=()) -> float | None:
    """The latest epoch time among all samples (or, with none, the spans' known
    starts and ends): where a span still open is drawn to."""
    times = [t for _name, _kind, samples in series for t in _times(samples or ())]
    if not times:
        times = [v for _label, start, end in spans for v in (_number(start), _number(end)) if v is not None]
    return max(times) if times else None


def spans(items, origin: float, last: float | None) -> list:
    """[(label, x0, x1, open)] in seconds since origin for (label, start, end)
    items; an end of None (still in place) runs to `last` (never before its
    start); an item without a start is dropped."""
    out = []
    for label, start, end in items:
        start = _number(start)
        if start is None:
            continue
        open_ = _number(end) is None
        stop = (last if last is not None else start) if open_ else _number(end)
        stop = max(stop, start)
        out.append((label, start - origin, stop - origin, open_))
    return out


def x_range(series, phase_spans, window_spans, origin: float) -> tuple:
    """(lo, hi) of the time axis: everything drawn, and the start (0), padded by 2%."""
    xs = [0.0]
    xs += [t - origin for _n, _k, samples in series for t in _times(samples or ())]
    xs += [x for span in list(phase_spans) + list(window_spans) for x in span[1:3]]
    lo, hi = min(xs), max(xs)
    pad = max((hi - lo) * 0.02, 0.5)
    return lo - pad, hi + pad


def text(value, limit: int = LABEL_MAX) -> str:
    """A string matplotlib shows as written: control characters become spaces,
    `$` is escaped (else a pair starts mathtext), long strings are cut."""
    s = "".join(c if c.isprintable() else " " for c in str(value))
    if len(s) > limit:
        s = s[:limit - 1] + "\u2026"
    return s.replace("$", r"\$")


# --- drawing --------------------------------------------------------------------------

def timeline(path, title: str, origin: float, phases: list, windows: list, series: list) -> str:
    """Write the experiment's timeline as a PNG at `path` (parent directories
    created; written aside and renamed into place) and return the path."""
    fig = figure(title, origin, phases, windows, series)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    with warnings.catch_warnings():
        # A glyph DejaVu lacks (a probe named in emoji) is drawn as a box: fine.
        warnings.filterwarnings("ignore", message=r".*[Gg]lyph.*missing.*")
        fig.savefig(image, format="png", dpi=DPI)
    # Beside it under a name nobody can guess, then renamed: a symlink left at
    # the path (or at a guessable partial name) is never written through as root.
    write_output(str(path), image.getvalue(), "--plot")
    return str(path)


def figure(title: str, origin: float, phases: list, windows: list, series: list):
    """The timeline as a matplotlib Figure (Agg canvas, not shown, not saved)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    series = [(str(name), kind, list(samples or ())) for name, kind, samples in series or ()]
    origin = float(origin)
    last = last_time(series, list(phases or ()) + list(windows or ()))
    phase_spans = spans(phases or (), origin, last)
    window_spans = spans(windows or (), origin, last)
    colour = {name: PROBE_COLOURS[i % len(PROBE_COLOURS)] for i, (name, _k, _s) in enumerate(series)}

    # What each panel shows: (name, kind, data).
    failures = [(name, kind, failure_bins(samples, origin))
                for name, kind, samples in series if kind in FAILURE_KINDS]
    failures = [f for f in failures if f[2]]
    latencies = [(name, kind, latency_points(kind, samples, origin))
                 for name, kind, samples in series if kind in LATENCY_FIELD]
    latencies = [lat for lat in latencies if lat[2][0]]
    transfers = [(name, kind, throughput_points(samples, origin))
                 for name, kind, samples in series if kind == "tcp_transfer"]
    transfers = [tr for tr in transfers if tr[2][0] or tr[2][2] is not None]

    panels = [p for p, present in (("failure", failures), ("latency", latencies),
                                   ("throughput", transfers)) if present] or ["empty"]
    legend_rows = min(len(window_spans), WINDOW_LEGEND_MAX + 1)
    heights = [3.0] * len(panels) + ([0.25 + 0.2 * math.ceil(legend_rows / 2)] if window_spans else [])

    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    axes = []
    for i in range(len(panels)):
        axes.append(fig.add_subplot(grid[i, 0], sharex=axes[0] if axes else None))
    fig.suptitle(text(title), fontsize=13, fontweight="bold")

    lo, hi = x_range(series, phase_spans, window_spans, origin)
    for ax, panel in zip(axes, panels):
        ax.grid(True, color="#d0d0d0", linewidth=0.6)
        ax.set_axisbelow(True)
        handles, labels = [], []
        if panel == "failure":
            for name, kind, bins in failures:
                xs, ys = gapped(bins)
                line, = ax.plot(xs, ys, color=colour[name], linewidth=1.4, marker="o", markersize=2.5)
                handles.append(line)
                labels.append(f"{text(name, NAME_MAX)} ({kind})")
            ax.set_ylim(-4, 104)
            ax.set_ylabel("loss / failed (%)\nper 1 s")
        elif panel == "latency":
            values = [v for _n, _k, (_xs, ys) in latencies for v in ys]
            log = use_log_scale(values)
            for name, kind, (xs, ys) in latencies:
                if log:  # nothing at or below zero on a log axis
                    kept = [(x, y) for x, y in zip(xs, ys) if y > 0]
                    xs, ys = [x for x, _y in kept], [y for _x, y in kept]
                ax.plot(xs, ys, linestyle="none", marker="o", markersize=2.5,
                                color=colour[name], alpha=0.8)
                handles.append(Line2D([], [], linestyle="none", marker="o", markersize=4, color=colour[name]))
                labels.append(f"{text(name, NAME_MAX)} ({'connect' if kind == 'tcp_connect' else 'rtt'})")
            if log:
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
            kinds = {kind for _n, kind, _d in latencies}
            what = " / ".join(w for w, present in (("RTT", kinds & {"icmp", "udp"}),
                                                   ("connect", "tcp_connect" in kinds)) if present)
            ax.set_ylabel(f"{what} (ms)" + ("\nlog scale" if log else ""))
        elif panel == "throughput":
            for name, _kind, (xs, ys, final) in transfers:
                ax.plot(xs, ys, color=colour[name], linewidth=1.4, marker="o", markersize=2.5)
                goodput = _number((final or {}).get("goodput_mbit"))
                if final is not None and final.get("ok") is not True:
                    note = "failed"
                elif goodput is not None:
                    note = f"goodput {goodput:.3g} Mbit/s"
                else:
                    note = "no result"
                handles.append(Line2D([], [], color=colour[name], marker="o", markersize=2.5))
                labels.append(f"{text(name, NAME_MAX)} ({note})")
            ax.set_ylim(bottom=0)
            ax.set_ylabel("throughput (Mbit/s)")
        else:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center",
                    color="#808080", fontsize=12)
        if handles:
            # Handles and labels given explicitly: a name starting with "_" is kept.
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=8, frameon=False, borderaxespad=0.0)
        _shade(ax, window_spans)
        _separate(ax, phase_spans)
        if ax is not axes[-1]:
            ax.tick_params(labelbottom=False)
    axes[0].set_xlim(lo, hi)
    _label_phases(axes[0], phase_spans, lo, hi)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(origin))
    axes[-1].set_xlabel(f"time since the experiment's start (s; 0 = {stamp})")

    if window_spans:
        box = fig.add_subplot(grid[len(panels), 0])
        box.axis("off")
        handles = [Patch(facecolor=WINDOW_COLOURS[i % len(WINDOW_COLOURS)], alpha=WINDOW_ALPHA * 2.5,
                         edgecolor=WINDOW_COLOURS[i % len(WINDOW_COLOURS)])
                   for i in range(len(window_spans))][:WINDOW_LEGEND_MAX]
        labels = [text(label) + (" (still in place)" if open_ else "")
                  for label, _x0, _x1, open_ in window_spans][:WINDOW_LEGEND_MAX]
        if len(window_spans) > WINDOW_LEGEND_MAX:
            handles.append(Patch(facecolor="none", edgecolor="none"))
            labels.append(f"\u2026 and {len(window_spans) - WINDOW_LEGEND_MAX} more fault windows")
        box.legend(handles, labels, loc="center left", ncol=1 if len(labels) < 3 else 2,
                   fontsize=8, frameon=False, title="faults in place (shaded)", title_fontsize=8,
                   borderaxespad=0.0)
    return fig


def _shade(ax, window_spans) -> None:
    for i, (_label, x0, x1, _open) in enumerate(window_spans):
        c = WINDOW_COLOURS[i % len(WINDOW_COLOURS)]
        ax.axvspan(x0, x1, facecolor=c, alpha=WINDOW_ALPHA, linewidth=0, zorder=0.6)
        for x in (x0, x1):
            ax.axvline(x, color=c, alpha=0.6, linewidth=0.8, zorder=0.7)


def _separate(ax, phase_spans) -> None:
    edges = sorted({x for _label, x0, x1, _open in phase_spans for x in (x0, x1)})
    for x in edges:
        ax.axvline(x, color=PHASE_COLOUR, linewidth=0.9, linestyle=(0, (4, 3)), zorder=0.8)


def _label_phases(ax, phase_spans, lo: float, hi: float) -> None:
    """Each phase's label above the top panel, centred on the phase; a label
    too close to the previous one goes a row higher, so short phases stay readable."""
    width = hi - lo
    previous = None
    row = 0
    for label, x0, x1, _open in phase_spans:
        centre = min(max((x0 + x1) / 2, lo), hi)
        row = (row + 1) % 2 if previous is not None and (centre - previous) < 0.18 * width else 0
        ax.annotate(text(label, 40), xy=(centre, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 3 + 11 * row), textcoords="offset points",
                    ha="center", va="bottom", fontsize=8, color=PHASE_COLOUR,
                    annotation_clip=False)
        previous = centre
