"""One adapter per resource kind: `run(kernel, phase, action)`."""

from . import addresses, links, namespaces, routes, sysctls

ADAPTERS = {
    "netns": namespaces,
    "link": links,
    "sysctl": sysctls,
    "addr": addresses,
    "route": routes,
}
