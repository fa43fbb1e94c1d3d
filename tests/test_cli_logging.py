"""The CLI's console logging: archer-sweep's INFO lines, not Ray's TensorBoard renaming chatter."""

from __future__ import annotations

import logging

from tensorboardX import summary

from archer_sweep.cli.app import configure_logging


def test_val_keys_do_not_make_a_tensorboard_info_line_per_report(caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("tensorboardX.summary").setLevel(logging.NOTSET)
    summary.scalar("ray/tune/val-core/archer-sweep/arithmetic/reward/mean@1", 0.25)
    assert any("is illegal" in r.getMessage() for r in caplog.records)  # what a user saw per report
    caplog.clear()
    configure_logging()
    summary.scalar("ray/tune/val-core/archer-sweep/arithmetic/reward/mean@1", 0.25)
    logging.getLogger("archer_sweep.engine").info("kept")
    assert [r.getMessage() for r in caplog.records] == ["kept"]
