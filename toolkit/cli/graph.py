"""`graph FILE`: the topology as a diagram, with the doctor's findings on it.

    graph FILE [--ns-prefix P] [--live] [--format mermaid|svg|png] [--output PATH]

Mermaid text (`graph LR`, as the lab notes draw their labs) on stdout by
default; SVG or PNG drawn with networkx and matplotlib. With --live the doctor
runs on the running lab (as `doctor FILE` does: root, the lab applied) and
each finding is marked: its nodes red, a note naming it; exit 2 when it found
something, as `doctor` does. Without --live nothing but the manifest is read.

--output PATH writes there instead (written aside and renamed into place); a
PATH that exists and is not a regular file (a symlink, a device, a FIFO, a
directory) is refused, never written through. A PNG goes to stdout only when
stdout is not a terminal.
"""

from __future__ import annotations

import sys


from ..errors import NetkeelError
from ..core.output import refuse_output, write_output
from .common import EXIT_CHANGES, HELP, command, err
from .invoking import task

FORMATS = ("mermaid", "svg", "png")


@task(help={"file": HELP["file"], "ns_prefix": HELP["ns_prefix"],
            "live": "run the doctor on the running lab and mark its findings (needs root; exit 2 when found)",
            "format": "mermaid (default), svg or png",
            "output": "write to this file instead of stdout (refused if it exists and is not a regular file)",
            "state_dir": HELP["state_dir"], "verbose": HELP["verbose"]})
@command("graph")
def graph(c, file, ns_prefix="", live=False, format="mermaid", output=None, state_dir=None, verbose=False):
    """Draw the topology (Mermaid, SVG or PNG); --live marks the doctor's findings on it."""
    fmt = str(format).lower()
    if fmt not in FORMATS:
        raise NetkeelError(f"--format {format!r}: the formats are {', '.join(FORMATS)}")
    if output is not None:
        refuse_output(output)
    elif fmt == "png" and sys.stdout.isatty():
        raise NetkeelError("a PNG is not for a terminal: give --output PATH, or redirect stdout")

    findings = []
    if live:
        from ..doctor import checks
        from ..doctor.finding import ordered
        from .doctor import diagnosed

        with diagnosed(file, ns_prefix, state_dir, verbose) as ctx:
            findings = ordered(checks.run(ctx))
        topology = ctx.topology
    else:
        from ..manifest import load_topology

        topology = load_topology(file)

    from ..doctor.graph import diagram, to_mermaid

    d = diagram(topology, findings, ns_prefix)
    if fmt == "mermaid":
        data = to_mermaid(d).encode()
    else:
        from ..doctor.render import render

        data = render(d, fmt)

    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_output(output, data)
        err.print(f"wrote {fmt} to {output}" + (f" ({len(findings)} finding(s) marked)" if live else ""))
    return EXIT_CHANGES if findings else 0
