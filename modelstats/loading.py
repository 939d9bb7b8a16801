"""Load a model to analyse from a ``.keras`` / ``.h5`` file or a ``keras.applications`` name.

Loading a file from somewhere else must not run code from it. Keras' safe mode refuses to
deserialise ``Lambda`` layers, but older Keras releases ignored it for ``.h5`` files, so the
file's configuration is read first (it is plain JSON) and any ``Lambda`` is refused here, before
Keras sees the file, unless the caller opts out with ``safe_mode=False``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Optional, Sequence

from modelstats.errors import ModelLoadError

__all__ = ["load_model", "application", "application_names"]

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def application_names() -> list[str]:
    """Names of the model constructors in ``keras.applications``.

    Examples
    --------
    >>> "MobileNetV2" in application_names()
    True
    """
    import keras

    return sorted(
        name for name in dir(keras.applications)
        if name[:1].isupper() and callable(getattr(keras.applications, name))
    )


def application(name: str, *, input_shape: Optional[Sequence[int]] = None) -> Any:
    """Build ``keras.applications.<name>`` with random weights (``weights=None``), offline.

    ``name`` is matched case-insensitively. An unknown name raises
    :class:`~modelstats.errors.ModelLoadError` with the closest known names.

    Examples
    --------
    >>> application("mobilenetv2", input_shape=(96, 96, 3)).input_shape
    (None, 96, 96, 3)
    """
    import keras

    known = {n.lower(): n for n in application_names()}
    canonical = known.get(name.lower())
    if canonical is None:
        close = difflib.get_close_matches(name.lower(), list(known), n=3, cutoff=0.6)
        hint = (
            f" Did you mean {', '.join(known[c] for c in close)}?" if close
            else f" Known names include {', '.join(sorted(known.values())[:6])}, ..."
        )
        raise ModelLoadError(
            f"'{name}' is neither a model file nor a keras.applications model.{hint}"
        )
    kwargs: dict[str, Any] = {"weights": None}
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    try:
        return getattr(keras.applications, canonical)(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"keras.applications.{canonical}{kwargs}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split("\n")[0].split())


def _lambda_layers(config: Any) -> list[str]:
    """Names of every ``Lambda`` layer in a serialised model config, nested models included."""
    found, stack = [], [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("class_name") == "Lambda":
                found.append(str((item.get("config") or {}).get("name", "?")))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(found)


def _read_config(path: Path, magic: bytes) -> tuple[Any, str]:
    """The model configuration stored in the file, without deserialising any layer, and the
    Keras version that saved it ("" when the file does not say)."""
    if magic == _ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise ModelLoadError(
                        f"'{path}' is a zip archive but not a Keras model (no config.json inside)."
                    )
                return json.loads(archive.read("config.json")), ""
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            if isinstance(exc, ModelLoadError):
                raise
            raise ModelLoadError(
                f"'{path}' is truncated or corrupted: {_first_line(exc)}"
            ) from None
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            version = handle.attrs.get("keras_version", b"")
    except OSError as exc:
        raise ModelLoadError(f"'{path}' is truncated or corrupted: {_first_line(exc)}") from None
    if raw is None:
        raise ModelLoadError(
            f"'{path}' holds weights but no model configuration; build the model in Python, "
            "load the weights into it and analyse the model object."
        )
    version = version.decode("utf-8") if isinstance(version, bytes) else str(version)
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw), version
    except ValueError as exc:
        raise ModelLoadError(f"'{path}' has an unreadable model configuration: {exc}") from None


def _load_keras2_h5(path: Path, saved_by: str, safe_mode: bool) -> Any:
    """An .h5 file saved by Keras 2: loaded with tf_keras, which knows its layers (TFOpLambda)."""
    try:
        import tf_keras
    except ImportError:
        raise ModelLoadError(
            f"'{path}' was saved by Keras {saved_by}; install tf_keras (pip install tf_keras) "
            "to load it."
        ) from None
    try:
        return tf_keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:  # noqa: BLE001 - one clear line instead of Keras' traceback
        raise ModelLoadError(
            f"tf_keras could not load '{path}' (saved by Keras {saved_by}): {_first_line(exc)}"
        ) from None


def load_model(source: str | os.PathLike, *, safe_mode: bool = True,
               input_shape: Optional[Sequence[int]] = None) -> Any:
    """Load a Keras model from a ``.keras`` / ``.h5`` file, or build a ``keras.applications`` one.

    ``.h5`` files saved by Keras 2 are loaded with ``tf_keras`` (when installed), so raw
    TensorFlow ops (``TFOpLambda``) load too.

    Parameters
    ----------
    source
        Path to a ``.keras`` or ``.h5`` file, or an application name such as ``"MobileNetV2"``
        (built with ``weights=None``).
    safe_mode
        Refuse files containing ``Lambda`` layers, whose Python code would run on loading.
        Pass ``False`` only for files you trust.
    input_shape
        For application names only: the input shape to build the model with. For files, pass
        ``input_shape`` to :func:`modelstats.analyze` instead.

    Raises
    ------
    ModelLoadError
        Missing file, directory, not a model file, truncated or corrupted file, ``Lambda`` layers
        in safe mode, unknown application name, or Keras failing to rebuild the model. The message
        is one line.

    Examples
    --------
    >>> load_model("no/such/model.keras")
    Traceback (most recent call last):
    ...
    modelstats.errors.ModelLoadError: 'no/such/model.keras': no such file.
    """
    path = Path(source)
    if not path.exists():
        if path.suffix.lower() in _MODEL_SUFFIXES or os.sep in str(source) or "/" in str(source):
            raise ModelLoadError(f"'{source}': no such file.")
        return application(str(source), input_shape=input_shape)
    if path.is_dir():
        raise ModelLoadError(
            f"'{path}' is a directory; modelstats loads .keras and .h5 files. Re-save the model "
            "with model.save('model.keras')."
        )
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if not (magic.startswith(_ZIP_MAGIC) or magic == _HDF5_MAGIC):
        raise ModelLoadError(
            f"'{path}' is not a Keras model file: expected a .keras archive or an .h5 (HDF5) file."
        )
    magic = _ZIP_MAGIC if magic.startswith(_ZIP_MAGIC) else _HDF5_MAGIC
    config, saved_by = _read_config(path, magic)
    lambdas = _lambda_layers(config)
    if lambdas and safe_mode:
        raise ModelLoadError(
            f"'{path}' contains Lambda layers {lambdas} whose Python code would run on loading; "
            "refused in safe mode. Load it with safe_mode=False (CLI: --unsafe) only if you "
            "trust the file."
        )
    if saved_by.startswith("2."):
        return _load_keras2_h5(path, saved_by, safe_mode)
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; one clear line instead
        missing = re.search(r"Could not locate (class|function) '([^']+)'", str(exc))
        if missing:
            raise ModelLoadError(
                f"'{path}' uses the custom {missing[1]} '{missing[2]}', which is not registered "
                "here: import the module that defines it (CLI: --import MODULE) and decorate it "
                "with @keras.saving.register_keras_serializable()."
            ) from None
        raise ModelLoadError(f"Keras could not load '{path}': {_first_line(exc)}") from None
