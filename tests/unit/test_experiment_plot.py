"""The experiment timeline: its pure reductions, and a real PNG read back.

The drawing tests read the written PNG with matplotlib.image.imread and look for
each fault window's shade colour where the figure's own axes put the window (and
not elsewhere), so a window that is not drawn, or drawn in the wrong place,
fails them.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from toolkit.experiment import plot
from toolkit.experiment.plot import (
    failure_bins, gapped, latency_points, last_time, spans, text, throughput_points, use_log_scale,
)

O = 1_700_000_000.0   # the experiment's origin, epoch seconds

# DejaVu Sans lacks some glyphs of the hostile names: drawn as boxes, as intended.
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")


# --- pure reductions ------------------------------------------------------------------

def test_failure_bins_are_percent_not_ok_per_second():
    samples = [
        {"t": O + 0.1, "ok": True}, {"t": O + 0.5, "ok": False},          # bin 0: 50%
        {"t": O + 0.99, "ok": True}, {"t": O + 0.7, "ok": True},          # bin 0: 1 of 4
        {"t": O + 1.2, "ok": True},                                       # bin 1: 0%
        {"t": O + 3.9, "ok": False},                                      # bin 3: 100%
        {"t": O - 0.5, "ok": None},                                       # before: no "ok" is a failure
        {"seq": 9, "ok": True}, {"t": None, "ok": True}, {"t": math.nan, "ok": True},  # no time
        {"t": "soon", "ok": True}, "not a sample",
    ]
    assert failure_bins(samples, O) == [(-1.0, 100.0, 1), (0.0, 25.0, 4), (1.0, 0.0, 1), (3.0, 100.0, 1)]


def test_failure_bins_skip_transfer_samples_and_accept_nothing():
    assert failure_bins([], O) == []
    assert failure_bins([{"t": O, "bytes": 1, "mbit": 8.0}, {"t": O, "done": True, "ok": True}], O) == []


def test_failure_bins_of_a_probe_with_no_successes():
    samples = [{"t": O + i * 0.25, "ok": False, "rtt_ms": None} for i in range(8)]
    assert failure_bins(samples, O) == [(0.0, 100.0, 4), (1.0, 100.0, 4)]


def test_gapped_breaks_the_line_where_seconds_have_no_samples():
    xs, ys = gapped([(0.0, 10.0, 2), (1.0, 20.0, 2), (3.0, 0.0, 1)])
    assert xs[:2] == [0.5, 1.5] and xs[3:] == [3.5]
    assert math.isnan(xs[2]) and math.isnan(ys[2])
    assert ys[:2] == [10.0, 20.0] and ys[3:] == [0.0]
    assert gapped([]) == ([], [])


def test_latency_points_are_answered_samples_only():
    samples = [
        {"t": O + 1, "ok": True, "rtt_ms": 0.5},
        {"t": O + 2, "ok": False, "rtt_ms": None},
        {"t": O + 3, "ok": True, "rtt_ms": None},       # answered without a time: skipped
        {"t": O + 4, "ok": True, "rtt_ms": math.inf},
        {"t": O + 5, "ok": True, "rtt_ms": 12},
    ]
    assert latency_points("icmp", samples, O) == ([1.0, 5.0], [0.5, 12.0])
    assert latency_points("udp", samples, O) == ([1.0, 5.0], [0.5, 12.0])
    connects = [{"t": O - 1, "ok": True, "connect_ms": 3.0}, {"t": O, "ok": True, "rtt_ms": 1.0}]
    assert latency_points("tcp_connect", connects, O) == ([-1.0], [3.0])
    assert latency_points("command", [{"t": O, "ok": True, "ms": 4.0}], O) == ([], [])


def test_log_scale_only_beyond_two_decades():
    assert use_log_scale([0.05, 0.06, 200.0])
    assert not use_log_scale([1.0, 100.0])             # exactly two decades
    assert use_log_scale([1.0, 100.1])
    assert not use_log_scale([0.0, 0.05, 4.0])         # zero is no decade
    assert not use_log_scale([5.0])
    assert not use_log_scale([])


def test_throughput_points_and_the_final_sample():
    final = {"t": O + 3, "done": True, "ok": True, "goodput_mbit": 90.0}
    samples = [{"t": O + 1, "bytes": 1, "mbit": 80.0}, {"t": O + 2, "bytes": 1, "mbit": None},
               {"t": O + 2.5, "bytes": 1, "mbit": 95}, final]
    assert throughput_points(samples, O) == ([1.0, 2.5], [80.0, 95.0], final)
    assert throughput_points([], O) == ([], [], None)


def test_spans_run_an_open_window_to_the_last_sample():
    assert spans([("a", O + 1, O + 2), ("b", O + 3, None), ("c", None, O + 4), ("d", O + 5, O + 4)],
                 O, O + 9) == [("a", 1.0, 2.0, False), ("b", 3.0, 9.0, True), ("d", 5.0, 5.0, False)]
    assert spans([("late", O + 12, None)], O, O + 9) == [("late", 12.0, 12.0, True)]
    assert spans([("alone", O + 3, None)], O, None) == [("alone", 3.0, 3.0, True)]


def test_last_time_of_samples_else_of_the_spans():
    series = [("a", "icmp", [{"t": O + 4}, {"t": O + 7}]), ("b", "udp", []), ("c", "command", [{"seq": 1}])]
    assert last_time(series) == O + 7
    assert last_time([], [("faults", O, O + 30), ("open", O + 5, None)]) == O + 30
    assert last_time([]) is None


def test_text_escapes_dollars_and_control_characters_and_cuts():
    from matplotlib import cbook
    assert text("$HOME costs $5") == r"\$HOME costs \$5"
    assert not cbook.is_math_text(text("$x$"))
    assert not cbook.is_math_text(text(r"a\$b$c$"))
    assert text("a\nb\tc\x00") == "a b c "
    cut = text("x" * 500, 20)
    assert len(cut) == 20 and cut.endswith("\u2026")


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, toolkit.experiment.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- drawing --------------------------------------------------------------------------

PHASES = [("steady state before", O, O + 10), ("faults", O + 10, O + 30), ("steady state after", O + 30, O + 40)]
WINDOWS = [("loss-40: loss 40% on ns_client2/veth_c2 egress", O + 15, O + 25),
           ("delay-200: delay 200ms on ns_server/veth_s egress", O + 31, None)]   # open: to the last sample


def _series():
    pings = [{"t": O + i * 0.1, "seq": i, "ok": i % 5 != 0 or not 150 <= i < 250,
              "rtt_ms": 0.05 + 0.01 * (i % 3)} for i in range(380)]     # last sample: O + 37.9
    for sample in pings:
        if not sample["ok"]:
            sample["rtt_ms"] = None
    connects = [{"t": O + i, "seq": i, "ok": True, "connect_ms": 0.4} for i in range(36)]
    transfer = [{"t": O + 1 + i, "bytes": 10**7, "mbit": 800.0 + i} for i in range(30)]
    transfer.append({"t": O + 31, "done": True, "ok": True, "goodput_mbit": 812.5})
    return [("ping c2", "icmp", pings), ("web", "tcp_connect", connects), ("bulk", "tcp_transfer", transfer)]


def _blend(colour: str, alpha: float):
    from matplotlib.colors import to_rgb
    return [1 - alpha * (1 - c) for c in to_rgb(colour)]


def _pixels(fig, ax, image, x0, x1, colour):
    """The fraction of pixels of `colour` in the panel's rows and the columns of
    data x0..x1 (a few pixels in from each edge), and how many columns that is."""
    import numpy
    height = image.shape[0]
    (left, _), (right, _) = ax.transData.transform([(x0, 0), (x1, 0)])
    box = ax.get_window_extent()
    rows = slice(int(height - box.y1) + 3, int(height - box.y0) - 3)
    columns = slice(int(math.ceil(left)) + 3, int(right) - 3)
    region = image[rows, columns, :3]
    if region.size == 0:
        return 0.0, 0
    match = numpy.all(numpy.abs(region - numpy.array(colour)) <= 2.5 / 255, axis=-1)
    return float(match.mean()), region.shape[1]


def test_timeline_writes_a_png_with_each_window_shaded_where_it_was(tmp_path):
    from matplotlib.image import imread

    path = tmp_path / "deep" / "er" / "timeline.png"
    assert plot.timeline(path, "loss then delay", O, PHASES, WINDOWS, _series()) == str(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert 20_000 < len(data) < 2_000_000
    image = imread(str(path))
    assert image.shape[:2] == (700, 1100)

    # Where matplotlib puts things in the same figure (same size, dpi and layout).
    fig = plot.figure("loss then delay", O, PHASES, WINDOWS, _series())
    fig.canvas.draw()
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 3       # loss, rtt, throughput
    first = _blend(plot.WINDOW_COLOURS[0], plot.WINDOW_ALPHA)
    second = _blend(plot.WINDOW_COLOURS[1], plot.WINDOW_ALPHA)
    lo, hi = axes[0].get_xlim()
    for ax in axes:
        inside, width = _pixels(fig, ax, image, 15, 25, first)
        assert width > 100 and inside > 0.6, (ax.get_ylabel(), inside)
        for x0, x1 in ((lo, 15), (25, hi)):
            assert _pixels(fig, ax, image, x0, x1, first)[0] < 0.001, ax.get_ylabel()
        # The open window runs from its start to the last sample (37.9 s), no further.
        assert _pixels(fig, ax, image, 31, 37.9, second)[0] > 0.6, ax.get_ylabel()
        assert _pixels(fig, ax, image, lo, 31, second)[0] < 0.001
        assert _pixels(fig, ax, image, 37.9, hi, second)[0] < 0.001


def test_timeline_without_the_window_has_no_shade(tmp_path):
    """The check above can fail: the same data without windows has none of the shade."""
    from matplotlib.image import imread

    path = plot.timeline(tmp_path / "t.png", "no faults", O, PHASES, [], _series())
    image = imread(path)
    fig = plot.figure("no faults", O, PHASES, [], _series())
    fig.canvas.draw()
    first = _blend(plot.WINDOW_COLOURS[0], plot.WINDOW_ALPHA)
    for ax in fig.axes:
        assert _pixels(fig, ax, image, *ax.get_xlim(), first)[0] < 0.001


def _texts(fig):
    from matplotlib.text import Text
    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def test_hostile_names_are_shown_as_written(tmp_path):
    from matplotlib import cbook

    names = ["$HOME and $PATH", "_underscore", "ping → ☃ 🔥 서버", "x" * 300, "two\nlines $"]
    series = [(name, "icmp", [{"t": O + i, "seq": i, "ok": True, "rtt_ms": 1.0 + i} for i in range(5)])
              for name in names]
    windows = [("$cost$ " + "w" * 200, O + 1, O + 2)]
    title = "exp $1 $2 \\$3"
    path = plot.timeline(tmp_path / "hostile.png", title, O, [("$phase$", O, O + 5)], windows, series)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    shown = _texts(plot.figure(title, O, [("$phase$", O, O + 5)], windows, series))
    assert not [s for s in shown if cbook.is_math_text(s)]
    legend = " | ".join(shown)
    assert r"\$HOME and \$PATH (icmp)" in legend
    assert "_underscore (icmp)" in legend           # a leading "_" would hide it from an implicit legend
    assert "ping → ☃ 🔥 서버 (rtt)" in legend
    assert "two lines \\$ (icmp)" in legend
    assert all(len(s) < 160 for s in shown)


def test_robust_to_empty_and_odd_input(tmp_path):
    # No series at all: one empty panel that says so, phases and windows still drawn.
    fig = plot.figure("empty", O, PHASES, WINDOWS, [])
    assert "no samples" in _texts(fig)
    plot.timeline(tmp_path / "empty.png", "empty", O, PHASES, WINDOWS, [])
    plot.timeline(tmp_path / "nothing.png", "", O, [], [], [])

    # A probe that never succeeded: a loss panel, no RTT panel; samples outside all
    # phases; a transfer that failed; a probe with no samples; an unknown kind.
    series = [
        ("dead", "udp", [{"t": O + 50 + i, "seq": i, "ok": False, "rtt_ms": None,
                          "stale": False, "out_of_order": False} for i in range(5)]),
        ("early", "command", [{"t": O - 20, "seq": 0, "ok": True, "exit": 0, "ms": 3.0}]),
        ("bulk", "tcp_transfer", [{"t": O + 3, "done": True, "ok": False, "goodput_mbit": None}]),
        ("silent", "icmp", []),
        ("odd", "gopher", [{"t": O, "ok": True}]),
    ]
    fig = plot.figure("odd", O, PHASES, [("open", O + 5, None)], series)
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_ylabel().split()[0] for ax in panels] == ["loss", "throughput"]
    lo, hi = panels[0].get_xlim()
    assert lo < -20 and hi > 54
    assert "bulk (failed)" in _texts(fig)
    path = plot.timeline(tmp_path / "odd.png", "odd", O, PHASES, [("open", O + 5, None)], series)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_rtt_panel_goes_log_beyond_two_decades():
    fast = [{"t": O + i, "ok": True, "rtt_ms": 0.05} for i in range(5)]
    slow = [{"t": O + i, "ok": True, "rtt_ms": 300.0} for i in range(5)]
    fig = plot.figure("t", O, [], [], [("a", "icmp", fast), ("b", "udp", slow)])
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "log"]
    fig = plot.figure("t", O, [], [], [("a", "icmp", fast)])
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]


@pytest.mark.parametrize("count", [1, 12])
def test_many_windows_are_summarised_in_the_legend(tmp_path, count):
    windows = [(f"fault-{i}", O + i, O + i + 0.5) for i in range(count)]
    series = [("p", "icmp", [{"t": O + i, "ok": True, "rtt_ms": 1.0} for i in range(15)])]
    shown = _texts(plot.figure("t", O, [], windows, series))
    assert "fault-0" in shown
    if count > plot.WINDOW_LEGEND_MAX:
        assert f"\u2026 and {count - plot.WINDOW_LEGEND_MAX} more fault windows" in shown
    plot.timeline(tmp_path / "w.png", "t", O, [], windows, series)


def test_a_symlink_at_the_plot_path_is_refused_never_written_through(tmp_path):
    """Written as root, often into /tmp: a symlink someone left at the path (or at
    the old guessable `.NAME.PID.partial`) was written through."""
    from toolkit.errors import NetkeelError

    target = tmp_path / "precious"
    target.write_text("keep")
    link = tmp_path / "timeline.png"
    link.symlink_to(target)
    with pytest.raises(NetkeelError, match="--plot .*timeline.png: it exists and is a symlink"):
        plot.timeline(link, "t", O, PHASES, WINDOWS, _series())
    assert target.read_text() == "keep" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "timeline.png"]  # nothing left aside
