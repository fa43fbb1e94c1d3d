"""The peers by name, each plain and with the rules able to force a stop (bench/peers/run.py).

`PEERS` holds the tools that import here (each in .venv-peers, bench/peers/setup.sh);
`MISSING` says why any other is absent; `SLOW` names the peers that take seconds a search
(bench/peers/run.py runs them on request). A peer is a decide_search method: (world, recorded
seed of trial k, bench seed) → its trials.
"""

from __future__ import annotations

import importlib
import logging
from functools import partial

from decide_search import MethodFn

log = logging.getLogger(__name__)
RULES = " + rules stop"
"""Suffix of a peer's variant whose trials end where archer-sweep's rules end them."""
TOOLS = {"smac_peer": ("FACADES", "smac_search"), "synetune_peer": ("SCHEDULERS", "synetune_search")}

PEERS: dict[str, MethodFn] = {}
MISSING: dict[str, str] = {}
SLOW: set[str] = set()
for module, (names, search) in TOOLS.items():
    try:
        mod = importlib.import_module(module)
    except ImportError as e:  # a tool not installed in this venv: its rows are left out, with why
        MISSING[module] = f"{type(e).__name__}: {e}"
        continue
    SLOW |= set(getattr(mod, "SLOW", ()))
    for name in getattr(mod, names):
        for suffix, rules in (("", False), (RULES, True)):
            fn = partial(getattr(mod, search), name, rules=rules)
            PEERS[name + suffix] = lambda w, seeds, s, fn=fn: fn(w, seeds, s)
