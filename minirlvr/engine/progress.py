"""Progress of a long loop over prompts or items: a tqdm bar on a terminal; without one (nohup, a job scheduler, a
pipe into a log file) a tqdm bar prints nothing useful, so a plain line instead, at most every PROGRESS_EVERY_S
seconds:

    refine critic: 48/300 prompts, 1.6 prompts/s, ETA 2m38s
    eval ifeval: 128/541 prompts, 0.9 prompts/s, 410 tokens/s, ETA 7m39s

Every command that loops over many prompts reports through this one class (generation, evaluation, scoring,
refinement, the attention analysis). It does not time anything for a report: rates are for a person watching.
"""

import time

from tqdm import tqdm

# Without a terminal, a plain progress line at most this often (tests set it to 0 to see every update)
PROGRESS_EVERY_S = 30.0


def eta(seconds):
    """'1h02m', '2m38s', '9s': a duration for a person."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """`total` units, `done` of them finished before (a resumed run). update(units, tokens) after each step; the
    rate and ETA count this run's units only. `enabled=False` shows nothing (a caller's own quiet mode)."""

    def __init__(self, total, done=0, desc="", name=None, unit="item", enabled=True, leave=True):
        self.bar = tqdm(total=total, initial=done, desc=desc, unit=unit, disable=None if enabled else True,
                        leave=leave)
        self.plain = enabled and self.bar.disable  # no terminal: lines instead of the bar
        self.name, self.unit, self.total, self.done, self.start = name or desc, unit, total, done, done
        self.tokens, self.t0 = 0, time.perf_counter()
        self.last = self.t0

    def update(self, units, tokens=None):
        self.done += units
        self.bar.update(units)
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        if tokens is not None:
            self.tokens += tokens
            self.bar.set_postfix(tok_s=f"{self.tokens / elapsed:.0f}")
        if self.plain and time.perf_counter() - self.last >= PROGRESS_EVERY_S:
            rate = (self.done - self.start) / elapsed
            shown = f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"
            line = f"{self.name}: {self.done}/{self.total} {self.unit}s, {shown} {self.unit}s/s"
            if tokens is not None:
                line += f", {self.tokens / elapsed:.0f} tokens/s"
            if self.done < self.total and rate > 0:
                line += f", ETA {eta((self.total - self.done) / rate)}"
            print(line, flush=True)
            self.last = time.perf_counter()

    def close(self):
        self.bar.close()
