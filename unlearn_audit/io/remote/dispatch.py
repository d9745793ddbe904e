"""Send row batches from a thread pool, a bounded number in flight, and settle each answer as it completes.

On any error (or an interrupt) the transport's ``stop`` event makes the other requests quit at their next retry
wait, nothing new is submitted, and answers that had already arrived are still settled (stored), so an
interrupted call loses nothing the endpoint answered; then the first error is raised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import numpy as np

log = logging.getLogger(__name__)

Span = tuple[int, int]


def dispatch(
    executor: ThreadPoolExecutor,
    rows: np.ndarray,
    *,
    batch_size: int,
    in_flight: int,
    request: Callable[[np.ndarray], np.ndarray],
    settle: Callable[[Span, np.ndarray], None],
    stop: threading.Event,
    where: str,
) -> None:
    """``request(rows[start:stop])`` for consecutive spans of ``batch_size`` rows, at most ``in_flight``
    submitted at a time; ``settle((start, stop), answer)`` in the calling thread as each completes."""
    spans = [(start, min(start + batch_size, len(rows))) for start in range(0, len(rows), batch_size)]
    pending: dict[Future[np.ndarray], Span] = {}
    queue = iter(spans)

    def submit_next() -> None:
        span = next(queue, None)
        if span is not None:
            pending[executor.submit(request, rows[span[0] : span[1]])] = span

    for _ in range(in_flight):
        submit_next()
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                span = pending.pop(future)
                settle(span, future.result())
                submit_next()
    except BaseException:
        # Stop the other requests (they quit at their next retry wait), keep what was already answered.
        stop.set()
        for future in pending:
            future.cancel()
        wait(pending)
        for future, span in pending.items():
            if not future.cancelled() and future.exception() is None:
                try:
                    settle(span, future.result())
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    log.debug("%s: could not keep a late answer", where, exc_info=True)
        raise
    finally:
        stop.clear()
