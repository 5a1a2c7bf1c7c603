"""Batch-wise work with per-batch commits, resume and a progress bar that moves.

``cfbench run`` and the experiments share this loop: the samples of one key (a method, an
attribution) are processed a batch at a time, each batch's rows are committed as one part file
(after whatever files the work wrote), and a restarted loop skips every committed sample. Work
reports what it is doing (an optimisation step, how many samples are still active) through the
status callback, which the bar shows within the batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
from tqdm.auto import tqdm

from cfbench.results import RunDir

Work = Callable[[list[str], Callable[[str], None]], pd.DataFrame]


class BatchLoop:
    def __init__(
        self, run: RunDir, key: str, sample_ids: list[str], batch_size: int, unit: str = "cf"
    ):
        self.run, self.key, self.sample_ids, self.batch_size, self.unit = (
            run,
            key,
            sample_ids,
            batch_size,
            unit,
        )

    def pending(self) -> list[str]:
        done = self.run.finished_rows(self.key)
        finished = set(done["sample_id"]) if done is not None else set()
        return [s for s in self.sample_ids if s not in finished]

    def run_all(self, work: Work) -> bool:
        """Process every pending sample; False when there was nothing left to do."""
        todo = self.pending()
        if not todo:
            return False
        bar = tqdm(
            total=len(self.sample_ids),
            initial=len(self.sample_ids) - len(todo),
            desc=self.key,
            unit=self.unit,
        )
        status = throttled(lambda text: bar.set_postfix_str(text, refresh=True))
        for start in range(0, len(todo), self.batch_size):
            ids = todo[start : start + self.batch_size]
            self.run.write_part(self.key, work(ids, status))
            bar.update(len(ids))
        bar.close()
        return True


def throttled(show: Callable[[str], None]) -> Callable[[str], None]:
    """``show`` called at most four times a second: status comes from inner loops."""
    last = [0.0]

    def status(text: str) -> None:
        now = time.monotonic()
        if now - last[0] > 0.25:
            last[0] = now
            show(text)

    return status


class StatusLine:
    """A line that appears with the first status a phase without samples reports (a global method's
    fit), showing the elapsed time and that status; silent phases print nothing."""

    def __init__(self, desc: str):
        self.desc, self.bar = desc, None
        self.report = throttled(self._show)

    def _show(self, text: str) -> None:
        if self.bar is None:
            self.bar = tqdm(desc=self.desc, bar_format="{desc}: {elapsed}{postfix}")
        self.bar.set_postfix_str(text, refresh=True)

    def __enter__(self) -> StatusLine:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
