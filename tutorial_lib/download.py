"""Downloads for users with internet: a registry of data sets with their SHA-256, and
:func:`fetch`, which downloads, verifies and extracts (nothing is downloaded at import).

Where data lives: :func:`data_root` = the ``root`` argument, else $TUTORIAL_DATA_DIR, else
``data`` (relative to the working directory). :mod:`tutorial_lib.datasets` reads from there.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

__all__ = ["data_root", "fetch", "DataSource", "REGISTRY", "ChecksumError", "sha256"]

DATA_DIR_VARIABLE = "TUTORIAL_DATA_DIR"


def data_root(root=None) -> Path:
    """Where data sets are read from: ``root``, else $TUTORIAL_DATA_DIR, else ``data``."""
    return Path(root if root is not None else os.environ.get(DATA_DIR_VARIABLE) or "data")


class DataSource(NamedTuple):
    url: str
    sha256: str
    filename: str        # a .zip is kept in root and extracted; any other file goes into folder
    folder: str          # what fetch returns, under root: the archive's folder, or the file's
    size: int | None = None


REGISTRY: dict[str, DataSource] = {
    # SHA-256 and size as recorded by tensorflow/datasets (url_checksums/movielens.txt);
    # GroupLens publishes the MD5 c4d9eecfca2ab87c1945afe126590906 for the same file.
    "ml-1m": DataSource("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                        "ml-1m.zip", "ml-1m", 5_917_549),
    "ml-100k": DataSource("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                          "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                          "ml-100k.zip", "ml-100k", 4_924_029),
    # DiffuRec's released Beauty split (Li et al.), read by load_diffurec_pkl. The release
    # publishes no checksum: this SHA-256 is that of the copy the benchmarks were measured on,
    # so a changed release is refused, not mixed in.
    "amazon_beauty": DataSource("https://raw.githubusercontent.com/WHUIR/DiffuRec/HEAD/datasets/data/"
                                "amazon_beauty/dataset.pkl",
                                "1d5ba224ff02584bcde37d3dd9fd3191d440829e7fcb7fe42dcfd313dd2144cb",
                                "dataset.pkl", "amazon_beauty", 1_217_889),
}


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the SHA-256 the registry records."""


def sha256(path) -> str:
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(source: DataSource, target: Path) -> None:
    """Stream ``source.url`` to a temporary file beside ``target``, verify, then rename."""
    from tqdm.auto import tqdm

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=60) as response:
            total = getattr(response, "headers", {}).get("Content-Length")
            with tqdm(total=int(total) if total else source.size, unit="B", unit_scale=True,
                      desc=target.name) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        got = sha256(tmp)
        if got != source.sha256:
            raise ChecksumError(f"SHA-256 of the download from {source.url} is {got}, expected "
                                f"{source.sha256}; the file was deleted. Try again, or download it by hand.")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(name: str, root=None, force: bool = False) -> Path:
    """Download data set ``name`` (a key of REGISTRY) into :func:`data_root`, verify, extract.

    Returns its folder, e.g. ``data/ml-1m`` (extracted from ``data/ml-1m.zip``) or
    ``data/amazon_beauty`` (holding ``dataset.pkl``). A cached download with the right
    SHA-256 is reused unless ``force``. Offline, raises ConnectionError saying what to
    download by hand and where to put it.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(REGISTRY)}")
    source, root = REGISTRY[name], data_root(root)
    folder = root / source.folder
    is_zip = source.filename.endswith(".zip")
    archive = root / source.filename if is_zip else folder / source.filename
    new_folder = not archive.parent.exists()
    archive.parent.mkdir(parents=True, exist_ok=True)
    if force or not archive.exists():
        try:
            _download(source, archive)
        except BaseException as err:
            if new_folder and not any(archive.parent.iterdir()):
                archive.parent.rmdir()                  # a failed download leaves nothing behind
            if isinstance(err, (OSError, ValueError)):  # URLError, timeouts, refused connections, bad URL
                raise ConnectionError(
                    f"could not download {source.url} ({err}). Without internet, download it by hand and "
                    f"save it as {archive.resolve()} (SHA-256 {source.sha256}), then call fetch({name!r}) again."
                ) from err
            raise
    elif sha256(archive) != source.sha256:
        raise ChecksumError(f"{archive} does not have the expected SHA-256 {source.sha256}; delete it "
                            f"or call fetch({name!r}, force=True) to download it again")
    if is_zip and (force or not folder.exists()):
        _extract(archive, source.folder, folder)
    return folder


def _extract(archive: Path, inner: str, folder: Path) -> None:
    """Unzip into a temporary folder beside ``folder``, then rename: an interrupted extraction
    leaves no half-filled ``folder`` that a later call would take for a finished one."""
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        if not (tmp / inner).is_dir():
            raise ValueError(f"{archive} does not contain the folder {inner!r} that REGISTRY names")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp / inner, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
