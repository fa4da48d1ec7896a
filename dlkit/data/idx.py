"""MNIST and Fashion-MNIST from the standard IDX files in a local folder (download optional).

IDX: two zero bytes, a type byte (0x08: unsigned byte), the number of dimensions, each dimension as
a big-endian int32, then the data. Files may be gzipped (`.gz`).
"""

from __future__ import annotations

import gzip
import shutil
import struct
import urllib.request
from pathlib import Path

import numpy as np

from dlkit.data.tensors import Dataset, split
from dlkit.errors import ConfigError
from dlkit.folders import written_whole
from dlkit.registry import register
from dlkit.schema import PositiveInt, SplitFraction

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
DOWNLOAD_TIMEOUT_S = 60  # a mirror that stops answering fails the download instead of hanging it
MIRRORS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file; a ConfigError naming the file when it is not a whole IDX file."""
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except (OSError, EOFError) as exc:  # a cut or damaged .gz, an unreadable file
        raise ConfigError(f"{path} cannot be read ({exc}); download it again.") from None
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ConfigError(f"{path} is not an IDX file of unsigned bytes (it starts with {raw[:4].hex() or 'nothing'}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"{path} is truncated: its header needs {header} bytes, the file has {len(raw)}.")
    shape = struct.unpack(f">{ndim}i", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise ConfigError(
            f"{path} is {what}: shape {shape} needs {expected} bytes, the file has {len(raw)}; download it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(root: Path, stem: str, name: str, download: bool, mirror: str | None) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    if download:
        root.mkdir(parents=True, exist_ok=True)
        target, url = root / f"{stem}.gz", f"{(mirror or MIRRORS[name]).rstrip('/')}/{stem}.gz"
        try:  # a cut download leaves no .gz
            with written_whole(target) as partial, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                with open(partial, "wb") as out:
                    shutil.copyfileobj(response, out)
        except OSError as exc:
            raise ConfigError(
                f"could not download {url} for {name} ({exc}); put the IDX files in {root} instead,"
                " or point data.mirror at a folder that has them."
            ) from None
        return target
    raise ConfigError(
        f"{name}: {root / stem}(.gz) is missing; put the four IDX files ({', '.join(FILES.values())}) in {root},"
        f" point data.root at them, or set data.download=true where a network is reachable."
    )


def idx_dataset(
    name: str,
    root: str,
    download: bool,
    val_fraction: SplitFraction,
    limit: PositiveInt | None,
    mirror: str | None = None,
) -> Dataset:
    """The published test split as it is; the last val_fraction of the training images is the validation split.
    download: fetch missing files (gzipped) from `mirror`, a URL folder (default: the data set's usual one)."""
    folder = Path(root).expanduser()
    arrays = {key: read_idx(_find(folder, stem, name, download, mirror)) for key, stem in FILES.items()}
    for part in ("train", "test"):
        if len(arrays[f"{part}_x"]) != len(arrays[f"{part}_y"]):
            images, labels = len(arrays[f"{part}_x"]), len(arrays[f"{part}_y"])
            raise ConfigError(f"{name}: {part} images and labels disagree: {images} images, {labels} labels.")
    x, x_test = (arrays[key][:, None].astype(np.float32) / 255.0 for key in ("train_x", "test_x"))
    y, y_test = (arrays[key].astype(np.int64) for key in ("train_y", "test_y"))
    return split(name, x, y, val_fraction=val_fraction, test=(x_test, y_test), limit=limit, num_classes=10)


@register("data", "mnist")
def mnist(
    root: str = "data/mnist",
    download: bool = False,
    val_fraction: SplitFraction = 1 / 12,
    limit: PositiveInt | None = None,
    mirror: str | None = None,
) -> Dataset:
    return idx_dataset("mnist", root, download, val_fraction, limit, mirror)


@register("data", "fashion_mnist")
def fashion_mnist(
    root: str = "data/fashion_mnist",
    download: bool = False,
    val_fraction: SplitFraction = 1 / 12,
    limit: PositiveInt | None = None,
    mirror: str | None = None,
) -> Dataset:
    return idx_dataset("fashion_mnist", root, download, val_fraction, limit, mirror)
