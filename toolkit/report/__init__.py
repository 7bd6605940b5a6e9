"""Views of plans, drift and live state: human (rich), machine (JSON) and JUnit."""


def node_name(namespace: str, prefix: str) -> str:
    """The node a namespace stands for: its name without the --ns-prefix."""
    return namespace[len(prefix):] if prefix and namespace.startswith(prefix) else namespace
