"""Views of plans, drift and live state: human (rich), machine (JSON) and JUnit."""


def node_name(namespace: str, prefix: str) -> str:
    """The node a namespace stands for: its name without the --ns-prefix."""
    return namespace[len(prefix):] if prefix and namespace.startswith(prefix) else namespace


# What drift, plan and apply say when the kernel matches the manifest, and how
# they name the instance: the whole commands (report/human.py, cli/reconcile.py) and
# the quick answer from a verdict (cli/quick.py, which prints without rich) say
# it in the same words.
HEADING = {"drift": "drift of {}", "plan": "plan for {}", "apply": "{}"}
IN_SYNC = {"drift": "in sync, no drift", "plan": "nothing to do, the kernel matches the manifest",
           "apply": "already in sync, nothing changed"}


def shown(value) -> str:
    """A name or value from a file or the kernel inside a line of rich markup (a
    message, a table cell): never read as markup (a device called `[link=x]y`
    made a hyperlink escape), its control characters written as escapes (a
    newline would forge a row)."""
    from rich.markup import escape  # (here: the quick answer imports this module, and prints without rich)

    from ..core.escapes import escape_controls

    return escape(escape_controls(str(value)))


def title(name: str, prefix: str) -> str:
    """A topology instance as reports name it: its name, and prefix if any."""
    return name + (f" (prefix {prefix})" if prefix else "")
