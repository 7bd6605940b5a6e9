"""The only code that touches the kernel.

`Kernel` (session.py) holds one netlink socket per namespace, opened inside that
namespace; one adapter module per resource kind (namespaces, links, addresses,
routes, sysctls) reads live resources and carries out plan actions.
"""

from .session import Kernel

__all__ = ["Kernel"]
