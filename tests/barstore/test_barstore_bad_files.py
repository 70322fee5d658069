"""Bad input and failing disks: typed errors that name the file, and no other damage.

How each failure is produced (tests run as root here, for whom chmod changes nothing):

- permission: a ``spawn`` child drops to uid/gid ``nobody`` (65534) with ``os.setuid`` before
  it touches the store, in a folder made by this process (as another user would meet it);
  without root the folder is made read-only with ``chmod`` instead;
- file size limit: a ``spawn`` child sets ``RLIMIT_FSIZE`` (and ignores ``SIGXFSZ``), so the
  kernel fails its ``write()`` with ``EFBIG`` mid-file;
- disk full: a 256 KiB ``tmpfs`` is mounted (needs root and ``CAP_SYS_ADMIN``; skipped
  otherwise), so ``write()`` fails with ``ENOSPC``.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtrader_ibkr_cp import (
    BarStore,
    BarStoreCorrupt,
    BarStoreError,
    BarStoreLookupError,
    BarStoreVersionError,
    BarStoreWriteError,
)
from backtrader_ibkr_cp.barstore.schema import META_KEY
from tests.barstore.barstore_helpers import AAPL, IBM, LATER, make_bars, utc, write_as

SPAWN = multiprocessing.get_context("spawn")
WEEK = (utc(2024, 3, 4), utc(2024, 3, 9))
AAPL_PART = "conid=265598/bar=5min/hours=rth/year=2024/bars.parquet"
NOBODY = 65534


def _two_series(root: Path) -> BarStore:
    store = BarStore(root, clock=lambda: LATER)
    store.write(AAPL, "5min", make_bars("5min", *WEEK), span=WEEK)
    store.write(IBM, "5min", make_bars("5min", *WEEK, version=3), span=WEEK)
    return store


def _assert_ibm_intact(store: BarStore) -> None:
    assert store.read(IBM, "5min") == make_bars("5min", *WEEK, version=3)
    assert store.contract("IBM") == IBM


# -- corrupt and foreign files -----------------------------------------------------------


def test_a_truncated_file_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    store = _two_series(tmp_path)
    path = tmp_path / AAPL_PART
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for call in (
        lambda: store.read(AAPL, "5min"),
        lambda: store.coverage(AAPL, "5min"),
        lambda: store.missing(AAPL, "5min", *WEEK),
    ):
        with pytest.raises(BarStoreCorrupt) as info:
            call()
        assert info.value.path == str(path)
        assert str(path) in str(info.value) and "move the file away" in str(info.value)
    # Writing over it is refused too, and leaves the file as it was.
    with pytest.raises(BarStoreCorrupt):
        store.write(AAPL, "5min", make_bars("5min", *WEEK), span=WEEK)
    assert path.read_bytes() == data[: len(data) // 2]
    _assert_ibm_intact(store)
    problems = {s.key.conid: s.problem for s in store.series()}
    assert problems[8314] is None and str(path) in (problems[265598] or "")
    # The remedy works: move the file away, fill again.
    path.rename(tmp_path / "aside.parquet")
    assert store.missing(AAPL, "5min", *WEEK) == [store_span(WEEK)]


def store_span(span: tuple[object, object]) -> object:
    from backtrader_ibkr_cp.barstore import Span

    return Span(*span)  # type: ignore[arg-type]


def test_a_foreign_parquet_file_is_refused(tmp_path: Path) -> None:
    store = _two_series(tmp_path)
    path = tmp_path / AAPL_PART
    pq.write_table(pa.table({"symbol": ["AAPL"], "price": [1.0]}), path)
    with pytest.raises(BarStoreCorrupt, match=r"is not a bar store file .*columns: symbol, price"):
        store.read(AAPL, "5min")
    # Our metadata on other columns is refused as well.
    meta = pq.read_schema(tmp_path / "conid=8314/bar=5min/hours=rth/year=2024/bars.parquet")
    table = pa.table({"timestamp": [1], "close": [1.0]}).replace_schema_metadata(
        {META_KEY: meta.metadata[META_KEY].replace(b"8314", b"265598")}
    )
    pq.write_table(table, path)
    with pytest.raises(BarStoreCorrupt, match="has columns"):
        store.read(AAPL, "5min")
    path.write_bytes(b"timestamp,open\n1,2\n")  # not Parquet at all
    with pytest.raises(BarStoreCorrupt, match="cannot be read as Parquet"):
        store.read(AAPL, "5min")
    _assert_ibm_intact(store)


def test_a_file_in_the_wrong_folder_is_refused(tmp_path: Path) -> None:
    store = _two_series(tmp_path)
    ibm = tmp_path / "conid=8314/bar=5min/hours=rth/year=2024/bars.parquet"
    shutil.copy(ibm, tmp_path / AAPL_PART)
    with pytest.raises(BarStoreCorrupt, match=r"says it holds conid 8314 .* not conid 265598"):
        store.read(AAPL, "5min")


def test_a_newer_format_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    store = _two_series(tmp_path)
    path = tmp_path / AAPL_PART
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY])
    meta["version"] = 2
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), path)
    with pytest.raises(BarStoreVersionError) as info:
        store.read(AAPL, "5min")
    error = info.value
    assert (error.version, error.supported, error.path) == (2, 1, str(path))
    assert "format version 2" in str(error) and "upgrade backtrader_ibkr_cp" in str(error)
    _assert_ibm_intact(store)


def test_a_newer_store_or_contract_file_is_refused(tmp_path: Path) -> None:
    _two_series(tmp_path)
    contract_file = tmp_path / "conid=265598" / "_contract.json"
    data = json.loads(contract_file.read_text())
    data["version"] = 7
    contract_file.write_text(json.dumps(data))
    with pytest.raises(BarStoreVersionError, match=r"_contract\.json was written by format"):
        BarStore(tmp_path).contract(265598)
    assert BarStore(tmp_path).contract("IBM") == IBM  # one bad contract file hides no other
    assert BarStore(tmp_path).contracts() == [IBM]
    with pytest.raises(BarStoreLookupError, match=r"unreadable: .*conid=265598/_contract\.json"):
        BarStore(tmp_path).contract("AAPL")
    marker = tmp_path / "_barstore.json"
    marker.write_text(json.dumps({"format": "backtrader_ibkr_cp.barstore", "version": 3}))
    with pytest.raises(BarStoreVersionError, match=r"_barstore\.json"):
        BarStore(tmp_path).read(IBM, "5min")
    marker.write_text("{")
    with pytest.raises(BarStoreCorrupt, match="not a bar store file"):
        BarStore(tmp_path).series()


# -- permission and full disks -------------------------------------------------------------


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A store folder under /tmp that user ``nobody`` can reach (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="barstore-perm-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder / "bars"
    finally:
        shutil.rmtree(folder)


#: What a child reports: error class name, message, path, errno, bars it could read.
Outcome = tuple[str, str, "str | None", "int | None", int]


def _run_child(
    root: Path, which: str, *, uid: int | None = None, fsize: int | None = None
) -> Outcome:
    result = SPAWN.Queue()
    child = SPAWN.Process(target=write_as, args=(str(root), which, uid, fsize, result))
    child.start()
    answer = result.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    return answer  # type: ignore[no-any-return]


@pytest.mark.parametrize("which", ["new", "existing"])
def test_a_folder_this_user_cannot_write_is_a_typed_error(shared_folder: Path, which: str) -> None:
    store = _two_series(shared_folder)
    before = (shared_folder / AAPL_PART).read_bytes()
    if os.geteuid() == 0:
        name, message, path, code, readable = _run_child(shared_folder, which, uid=NOBODY)
    else:  # pragma: no cover - CI as an ordinary user
        for folder in [shared_folder, *shared_folder.rglob("*")]:
            if folder.is_dir():
                folder.chmod(0o555)
        name, message, path, code, readable = _in_process(shared_folder, which)
    assert readable == 5 * 78  # reading needs no write permission
    assert name == "BarStoreWriteError" and code == errno.EACCES
    assert path and path.startswith(str(shared_folder)) and path in message
    assert "permission denied for this user" in message and "is unchanged" in message
    assert (shared_folder / AAPL_PART).read_bytes() == before
    _assert_ibm_intact(store)
    assert store.coverage(IBM, "1min") == []


def _in_process(root: Path, which: str) -> Outcome:  # pragma: no cover - not as root
    store = BarStore(root, clock=lambda: LATER)
    readable = len(store.read(AAPL, "5min"))
    try:
        if which == "new":
            store.write(IBM, "1min", [], span=WEEK)
        else:
            store.write(AAPL, "5min", [], span=WEEK)
    except BarStoreWriteError as exc:
        return type(exc).__name__, str(exc), exc.path, exc.errno, readable
    return "no error", "", None, None, readable


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="RLIMIT_FSIZE is POSIX")
def test_a_write_failing_mid_file_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    store = _two_series(tmp_path / "bars")
    name, message, path, code, readable = _run_child(tmp_path / "bars", "new", fsize=64 * 1024)
    assert readable == 5 * 78
    assert name == "BarStoreWriteError" and code == errno.EFBIG
    assert path == str(tmp_path / "bars/conid=8314/bar=1min/hours=rth/year=2023/bars.parquet")
    assert path in message and "file size limit" in message
    assert not list((tmp_path / "bars").rglob("*.tmp"))  # the temporary file was removed
    assert store.coverage(IBM, "1min") == [] and store.read(IBM, "1min") == []
    _assert_ibm_intact(store)
    assert store.read(AAPL, "5min") == make_bars("5min", *WEEK)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real full disk (ENOSPC). Needs root and CAP_SYS_ADMIN."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_a_typed_error_and_damages_nothing(tiny_disk: Path) -> None:
    store = _two_series(tiny_disk / "bars")
    before = (tiny_disk / "bars" / AAPL_PART).read_bytes()
    start, end = utc(2023, 1, 1), utc(2024, 1, 1)
    with pytest.raises(BarStoreWriteError) as info:
        store.write(IBM, "1min", make_bars("1min", start, end), span=(start, end))
    error = info.value
    assert error.errno == errno.ENOSPC and "the disk is full" in str(error)
    assert error.path is not None and error.path in str(error)
    assert error.path.endswith("conid=8314/bar=1min/hours=rth/year=2023/bars.parquet")
    assert not list((tiny_disk / "bars").rglob("*.tmp"))
    assert (tiny_disk / "bars" / AAPL_PART).read_bytes() == before
    assert store.read(AAPL, "5min") == make_bars("5min", *WEEK)
    _assert_ibm_intact(store)
    assert isinstance(error, BarStoreError)


def test_a_corrupt_contract_file_is_listed_and_replaced_by_the_next_write(tmp_path: Path) -> None:
    store = _two_series(tmp_path)
    contract_file = tmp_path / "conid=265598" / "_contract.json"
    contract_file.write_text('{"format": "backtrader_ibkr_cp.barstore", "version": 1}')
    listed = {s.key.conid: s for s in store.series()}
    assert listed[265598].contract is None and str(contract_file) in (listed[265598].problem or "")
    assert listed[265598].bars == 5 * 78  # the bars are still counted
    with pytest.raises(BarStoreCorrupt, match="does not hold the contract of conid 265598"):
        store.contract(265598)
    assert store.read(265598, "5min") == make_bars("5min", *WEEK)  # by conid: no contract needed
    store.write(AAPL, "5min", [], span=(utc(2024, 3, 11), utc(2024, 3, 12)))
    assert store.contract("AAPL") == AAPL
