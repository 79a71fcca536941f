"""Files every layer writes and reads: folders written atomically, JSON objects, safetensors
arrays, each with the checks that turn a bad file into one message naming it.

Atomic writes: a folder is filled under a temporary name beside its destination and renamed
into place only once every file is flushed to disk, so a crash mid-save leaves the previous
folder intact. Replacing an existing folder takes two renames (old one aside, new one in);
if a crash falls between them, recover_folder finds the set-aside copy and puts it back.

Nothing here uses pickle: arrays go to safetensors, numbers and names to JSON. This module
imports NumPy and safetensors only, so any layer of tinydiff (data, models, pipelines) may
import it; tinydiff.pipelines.checkpoint builds model folders and checkpoints on it.
"""

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file


def fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def write_folder_atomically(path, write_contents):
    """Create folder `path` by calling write_contents(tmp_dir), then renaming tmp_dir to path.

    An existing folder at `path` is replaced only after the new one is complete; anything
    else at `path` (a file, a link) is refused, never moved aside. Whether an existing folder
    may be replaced at all is the caller's question (tinydiff.pipelines.outputs).
    """
    path = Path(path)
    if os.path.lexists(path) and (path.is_symlink() or not path.is_dir()):
        raise FileExistsError(f"{path} exists and is not a folder; not replacing it")
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkdir honours the umask, as a folder the user made would (tempfile.mkdtemp makes it
    # private, 0700, which the rename would then carry over to the saved model)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        write_contents(tmp)
        for file in tmp.rglob("*"):
            if file.is_file():
                fsync_file(file)
        if path.exists():
            aside = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, aside)
            os.rename(tmp, path)
            shutil.rmtree(aside)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_folder(path):
    """If a replacement was interrupted between its two renames, put the old folder back."""
    path = Path(path)
    if path.exists():
        return
    aside = sorted(path.parent.glob(f".{path.name}.old-*"))
    if aside:
        os.rename(aside[-1], path)


def write_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path):
    """A JSON object (dict) from a UTF-8 file. Every problem with the file, whatever its kind
    (unreadable, UTF-16, binary, invalid JSON, a list where an object belongs), is one
    ValueError naming it; a missing file is a FileNotFoundError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({err.strerror or err})") from None
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in raw[:4]:
        raise ValueError(f"{path}: UTF-16 or UTF-32 encoded text; expected UTF-8 JSON (save it as UTF-8)")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark some editors add is tolerated
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start} is {raw[err.start:err.start + 1]!r}); "
                         f"expected a UTF-8 JSON file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    except RecursionError:
        raise ValueError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{...}}, got a JSON {json_kind(data)}")
    return data


def json_kind(value):
    """The JSON name of a decoded value's type, for messages."""
    for kind, name in ((bool, "boolean"), (dict, "object"), (list, "list"), (str, "string"),
                       ((int, float), "number"), (type(None), "null")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def save_arrays(path, arrays, dtype=None):
    """Arrays by name to a safetensors file; dtype (e.g. float16) casts float arrays for storage.
    Float arrays holding NaN or inf are refused (ValueError): a saved model is never one that
    silently produces NaN."""
    out = {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a).reshape(np.shape(a))  # ascontiguousarray makes a 0-d array 1-d
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds NaN or inf; refusing to save it to {path}")
        if dtype is not None and a.dtype.kind == "f":
            a = a.astype(dtype)
        out[name] = a
    try:
        save_file(out, str(path))
    except SafetensorError as err:
        raise os_error_of(err, path) from None


def os_error_of(err, path):
    """safetensors reports a failed write (a full disk) as its own error, 'I/O error: ...
    (os error 28)'; give it back as the OSError it was, so callers can tell ENOSPC apart."""
    code = re.search(r"\(os error (\d+)\)", str(err))
    if code is None:
        return err
    return OSError(int(code[1]), os.strerror(int(code[1])), str(path))


def load_arrays(path):
    """Arrays by name from a safetensors file. A float array holding NaN or inf is refused,
    naming the file and the tensor: weights, EMA shadows or optimizer moments that are not
    finite come from a diverged or corrupted run, and would only produce NaN samples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        arrays = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
            raise ValueError(f"{path}: tensor {name!r} holds {bad} NaN/inf value(s) of {a.size}; "
                             f"refusing non-finite weights")
    return arrays


def shown(names, limit=4):
    """At most `limit` names for a one-line message, and how many more there are."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{list(names[:limit])}{more}"


def check_weights(model, state, source, config_source):
    """`state` (name -> array, read from `source`) has exactly the tensors `model` (built from
    `config_source`) has, each of its shape and a float dtype; ValueError naming the tensor."""
    own = {name: p.data.shape for name, p in model.named_parameters()}
    kind = type(model).__name__
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"{source}: missing {len(missing)} tensor(s) of the {kind} that {config_source} "
                         f"describes: {shown(missing)}")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise ValueError(f"{source}: {len(unexpected)} tensor(s) that the {kind} of {config_source} does not "
                         f"have: {shown(unexpected)}")
    for name, shape in own.items():
        got = state[name]
        if got.shape != shape:
            raise ValueError(f"{source}: tensor {name!r} has shape {got.shape}, but the {kind} of "
                             f"{config_source} needs {shape}")
        if got.dtype.kind != "f":
            raise ValueError(f"{source}: tensor {name!r} has dtype {got.dtype}; expected floats")
    return {k: v.astype(np.float32) for k, v in state.items()}
