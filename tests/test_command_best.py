"""The command backend keeps the external trainer's checkpoint of the best step (hard links in
`<output dir>/best/`), out of reach of the trainer's own rotation."""

from __future__ import annotations

import json
import logging
import shutil

from tests.test_command_backend import trainer
from trainable.backends import command_best


def test_best_step_checkpoint_survives_the_trainers_rotation(tmp_path, caplog):
    t = trainer(tmp_path, total_steps=4, overrides={"trainer.save_freq": 2})
    try:
        for _ in range(2):
            t.step()
        t.keep_best(2)
        out = t.output_dir
        shutil.rmtree(out / "global_step_2")  # verl's max_actor_ckpt_to_keep rotation
        kept = out / command_best.BEST_DIR
        assert (kept / "global_step_2" / "model.bin").read_text() == "weights of step 2"
        assert json.loads((kept / command_best.BEST_FILE).read_text())["step"] == 2
        t.step()
        with caplog.at_level(logging.WARNING):
            t.keep_best(3)  # no trainer checkpoint at step 3 (save_freq 2): the last best stays
        assert "best step 3: the trainer saved no checkpoint there" in caplog.text
        assert (kept / "global_step_2" / "model.bin").exists()
        t.step()
        t.keep_best(4)
        assert sorted(p.name for p in kept.iterdir()) == [command_best.BEST_FILE, "global_step_4"]
    finally:
        t.close()


def test_off_when_best_checkpoint_dir_is_none(tmp_path):
    t = trainer(tmp_path, total_steps=2, best_checkpoint_dir=None)
    try:
        t.step()
        t.keep_best(1)
        assert not (t.output_dir / command_best.BEST_DIR).exists()
    finally:
        t.close()
