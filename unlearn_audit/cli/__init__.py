"""Command line: ``unlearn-audit info | check | report | unlearn | remediate | demo | verify-report``.

Thin on purpose: each command parses its options (the shared ones are declared once, in :mod:`.options`), calls
the Python API, renders (:mod:`unlearn_audit.render`) and returns an exit code. Exit codes (one table,
:data:`.app.EXIT_CODES`, documented in docs/cli.md):

====  =====================================================================
0     pass: consistent with retraining (or a command that succeeded)
1     finding: residual knowledge or over-unlearning (verify-report: a mismatch)
2     bad input or usage (one-line message naming the file, row or field)
3     inconclusive: the evidence does not decide
4     internal error (a bug: please report it with UNLEARN_AUDIT_DEBUG=1 output)
130   interrupted
====  =====================================================================
"""

from __future__ import annotations

from . import check, demo, info, remediate, report, unlearn, verify_report
from .app import (
    EXIT_CODES,
    EXIT_FINDING,
    EXIT_INCONCLUSIVE,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    app,
    main,
    register,
    run,
)
from .parsing import parse_draws, parse_hparams, parse_taus

# In the order `unlearn-audit --help` lists them.
register(info.info, info.USAGE)
register(check.check, check.USAGE)
register(report.report, report.USAGE)
register(unlearn.unlearn, unlearn.USAGE)
register(remediate.remediate, remediate.USAGE)
register(demo.demo, demo.USAGE)
register(verify_report.verify_report, verify_report.USAGE)

__all__ = [
    "EXIT_CODES",
    "EXIT_FINDING",
    "EXIT_INCONCLUSIVE",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "app",
    "main",
    "parse_draws",
    "parse_hparams",
    "parse_taus",
    "run",
]
