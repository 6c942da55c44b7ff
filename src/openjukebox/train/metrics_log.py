"""Training logs: a CSV that a resumed run continues without duplicate rows, and TensorBoard when installed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..fileio import atomic_write_text


class MetricsLog:
    def __init__(self, run_dir: Path, resume_step: int, name: str = "log", enabled: bool = True) -> None:
        self.path = Path(run_dir) / f"{name}.csv"
        self.enabled = enabled
        self.fields: list[str] | None = None
        self._tensorboard = None
        if not enabled:
            return
        if self.path.is_file():
            self._truncate_after(resume_step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(Path(run_dir) / "tensorboard" / name), purge_step=resume_step + 1)
        except ImportError:
            pass

    def _truncate_after(self, step: int) -> None:
        """Drop rows logged after the checkpoint we resume from: those steps will be run again."""
        with open(self.path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        self.fields = list(rows[0].keys())
        kept = [r for r in rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.fields)
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, out.getvalue())

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **{k: f"{v:.6g}" for k, v in values.items()}}
        new_file = not self.path.is_file() or self.fields is None
        if new_file:
            self.fields = list(row.keys())
        with open(self.path, "a" if not new_file else "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self._tensorboard is not None:
            for key, value in values.items():
                self._tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
