"""A remote "audit" as a separate process, for the kill-and-resume test: query ROWS deterministic inputs in
calls of CALL rows through a RemoteModel with an answer cache in WORK_DIR, then write the labels and the usage.

usage: python resume_client.py URL WORK_DIR OUT_JSON ROWS CALL
"""

from __future__ import annotations

import json
import sys

import numpy as np


def inputs(rows: int, shape: tuple[int, ...] = (8,)) -> np.ndarray:
    return np.random.default_rng(7).random((rows, *shape), dtype=np.float32)


def main(url: str, work_dir: str, out: str, rows: int, call: int) -> None:
    from unlearn_audit.io.remote import RemoteModel, RemoteSettings

    x = inputs(rows)
    settings = RemoteSettings(batch_size=8, concurrency=2, recheck_rate=0.0, backoff=0.01)
    labels = []
    with RemoteModel(url, settings, work_dir=work_dir) as model:
        for start in range(0, rows, call):
            labels += model.predict(x[start : start + call]).tolist()
        usage = model.usage_dict()
    with open(out, "w") as handle:
        json.dump({"labels": labels, "usage": usage}, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
