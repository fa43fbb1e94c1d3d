"""The external trainer's checkpoint of the best step, kept out of reach of its own rotation.

With `search.objective_reduce: best` the Ray trainable tells the trainer each new best step
(`keep_best(step)`). The command backend then hard-links the trainer's checkpoint directory
of that step (`best_checkpoint_dir`, verl: `<default_local_dir>/global_step_<N>`) into
`<output dir>/best/`, replacing the previous best, and names it in `best/best.json`. verl's
rotation (`trainer.max_actor_ckpt_to_keep`) deletes its own directory only: the hard links
keep the files. Hard links need the same filesystem (they always are: `best/` sits beside the
trainer's checkpoints) and cost no copy.

What cannot be kept: a step the trainer saved no checkpoint at (its `trainer.save_freq` does
not divide the step): a warning names the step and the setting.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Optional

log = logging.getLogger(__name__)

BEST_DIR = "best"
BEST_FILE = "best.json"


def keep_best(output_dir: Path, pattern: str, step: int) -> Optional[Path]:
    """Hard-link `output_dir/pattern.format(step=step)` into `output_dir/best/`; its path, or None."""
    src = Path(output_dir) / pattern.format(step=step)
    if not src.is_dir():
        log.warning(
            "best step %d: the trainer saved no checkpoint there (%s missing; set its save_freq "
            "to a divisor of the steps you want kept, e.g. trainer.save_freq=1)",
            step,
            src,
        )
        return None
    best = Path(output_dir) / BEST_DIR
    staging = best.with_name(BEST_DIR + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(src, staging / src.name, copy_function=os.link)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        log.warning("best step %d: could not hard-link %s (%s); not protected", step, src, exc)
        return None
    (staging / BEST_FILE).write_text(json.dumps({"step": step, "checkpoint": str(src)}))
    shutil.rmtree(best, ignore_errors=True)
    staging.rename(best)
    log.info("best step %d: trainer checkpoint %s kept as %s", step, src, best / src.name)
    return best / src.name
