"""Read a W&B offline run (`wandb/offline-run-*/run-<id>.wandb`) into a `Run`.

wandb ≥ 0.19 ships no Python reader for its run files (the old
`wandb.sdk.internal.datastore` is gone; wandb-core writes them). The file is a
LevelDB-style record log: a 7-byte header `:W&B` + magic 0xBEE1 + version 0, then
32 KiB blocks of chunks `crc32c(4) len(2) type(1) payload`, chunk types full=1,
first=2, middle=3, last=4. Each record is a `wandb_internal_pb2.Record` protobuf
(decoded with wandb's own generated classes): `run`/`config` carry the config,
`history` one logged step.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

from archer_sweep.errors import UserError
from archer_sweep.results.runs import Run, finalize, flatten
from archer_sweep.values import to_float
from trainable import metrics as M

HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
BLOCK = 32768
IDENT, MAGIC = b":W&B", 0xBEE1
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
#: Run metadata Ray's WandbLoggerCallback adds to the W&B config; not trial parameters.
RAY_META = frozenset(
    {"trial_log_path", "trial_id", "date", "pid", "hostname", "node_ip", "experiment_tag", "backend"}
)


def _payloads(path: Path) -> Iterator[bytes]:
    data = path.read_bytes()
    if len(data) < HEADER.size or HEADER.unpack_from(data)[:2] != (IDENT, MAGIC):
        raise UserError(f"{path}: not a W&B run file (bad header)")
    pos, buf = HEADER.size, b""
    while pos + CHUNK.size <= len(data):
        room = BLOCK - pos % BLOCK
        if room < CHUNK.size:  # block trailer padding
            pos += room
            continue
        _crc, length, kind = CHUNK.unpack_from(data, pos)
        payload = data[pos + CHUNK.size : pos + CHUNK.size + length]
        pos += CHUNK.size + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            buf = payload
        elif kind == MIDDLE:
            buf += payload
        elif kind == LAST:
            yield buf + payload
        elif kind == 0 and length == 0:
            continue
        else:
            raise UserError(f"{path}: corrupt record at byte {pos} (chunk type {kind})")


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _config(updates, into: dict) -> None:
    for u in updates:
        k = _key(u)
        if k.startswith("_wandb"):
            continue
        into[k] = json.loads(u.value_json)


def _records(path: Path) -> Iterator:
    """The file's records (wandb's generated `Record`), in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in _payloads(path):
        rec = pb.Record()
        try:
            rec.ParseFromString(raw)
        except Exception as exc:  # protobuf's DecodeError has no stable import path
            raise UserError(f"{path}: undecodable record ({exc})") from exc
        yield rec


def is_complete(path: Path) -> bool:
    """Whether wandb has written the run's `exit` record, its last, to this transaction log."""
    try:
        return any(rec.WhichOneof("record_type") == "exit" for rec in _records(path))
    except (OSError, UserError):  # not there yet, or half written: not complete
        return False


def read_wandb_run(path: Path) -> Run:
    """One offline run: params = the flattened run config, steps = the history records."""
    config: dict = {}
    run_id, steps = path.stem.removeprefix("run-"), []
    for rec in _records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run_id = rec.run.run_id or run_id
            _config(rec.run.config.update, config)
        elif kind == "config":
            _config(rec.config.update, config)
        elif kind == "history":
            row = {_key(i): to_float(json.loads(i.value_json)) for i in rec.history.item}
            row = {k: v for k, v in row.items() if v is not None}
            step = row.get(M.STEP, row.get("training_iteration", row.get("_step")))
            if step is not None:
                steps.append({k: v for k, v in row.items() if not k.startswith("_")} | {M.STEP: int(step)})
    params = flatten(config.get("config", config) if isinstance(config.get("config"), dict) else config)
    params = {k: v for k, v in params.items() if k not in RAY_META}
    return finalize(Run(run_id, params, steps, None, str(path)))
