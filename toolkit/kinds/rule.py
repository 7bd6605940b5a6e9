"""Kind "rule": a policy routing rule, key (ns, family, priority, selector).

Never declared, never planned: a rule in a managed namespace was made by hand
(the kernel's own are not read) and is read as foreign, so that drift names it
(it changes where traffic goes) while apply and rollback leave it alone.
"""

from __future__ import annotations

from .base import Kind


class Rule(Kind):
    name = "rule"
    forward_phases = ()
    delete_phase = None
    key_arity = 4
    key_integers = (2,)  # the priority

    def label(self, resource) -> str:
        _, family, priority, selector = resource.key
        return f"rule {priority}: {selector} ({family})"


KIND = Rule()
