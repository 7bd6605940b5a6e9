"""The kernel backend: the only code that touches the kernel.

`Kernel` (session.py) implements the backend protocol of toolkit/core/backend.py:
one netlink socket and one libnftables context per namespace, opened inside
that namespace, and one module per resource kind (namespaces, links,
addresses, routes, neighbours, sysctls, nftables) that reads live resources
and carries out the kinds' requests. It imports only the bottom layer
(toolkit/core, toolkit/kinds).
"""

from .session import Kernel

__all__ = ["Kernel"]
