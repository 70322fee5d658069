"""A cassette file that is not a readable cassette is a typed error naming the file."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

import backtrader_ibkr_cp
from backtrader_ibkr_cp.cassettes import Cassette, CassetteCorrupt, read_metadata
from backtrader_ibkr_cp.cassettes.replay import ReplayAdapter

BUNDLED = Path(__file__).parents[2] / "cassettes" / "aapl_msft_5min_synthetic.json"

#: name -> (file name, bytes, what the message says is wrong)
BAD = {
    "truncated": ("cut.json", BUNDLED.read_bytes()[:5000], "is not valid JSON"),
    "empty": ("empty.json", b"", "is empty (0 bytes)"),
    "blank": ("blank.json", b"\n  \n", "is empty"),
    "empty object": ("object.json", b"{}", "without an 'interactions' list"),
    "a list": ("list.json", b"[1, 2]", "without an 'interactions' list"),
    "bad interaction": ("bad.json", b'{"interactions": [{"request": {}}]}', "interaction #0"),
    "not utf-8": ("latin.json", b'{"interactions": ["\xe9"]}', "is not UTF-8"),
    "not gzip": ("junk.json.gz", b"definitely not gzip", "is not gzip data"),
    "truncated gzip": ("cut.json.gz", gzip.compress(BUNDLED.read_bytes())[:4000], "gzip"),
}


@pytest.fixture(params=sorted(BAD))
def bad_cassette(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    name, content, said = BAD[request.param]
    path = tmp_path / name
    path.write_bytes(content)
    return path, said


def _assert_names_the_file_and_the_fix(error: CassetteCorrupt, path: Path, said: str) -> None:
    assert error.cassette_path == str(path)
    assert said in str(error)
    assert f"cassette {path} " in str(error)
    assert f"ibkr-cp record --cassette {path}" in str(error)


def test_replay_refuses_it(bad_cassette: tuple[Path, str]) -> None:
    path, said = bad_cassette
    with pytest.raises(CassetteCorrupt) as caught:
        ReplayAdapter(path)
    _assert_names_the_file_and_the_fix(caught.value, path, said)


@pytest.mark.parametrize("mode", ["none", "once", "new_episodes", "all"])
def test_starting_a_cassette_refuses_it_in_every_mode(
    bad_cassette: tuple[Path, str], mode: str
) -> None:
    path, said = bad_cassette
    before = path.read_bytes()
    cassette = Cassette(path, mode)
    with pytest.raises(CassetteCorrupt) as caught:
        cassette.start()
    _assert_names_the_file_and_the_fix(caught.value, path, said)
    assert not cassette.active
    cassette.stop()  # harmless after a failed start
    assert path.read_bytes() == before  # nothing was overwritten
    with Cassette(BUNDLED):  # and nothing is left patched or marked active
        pass


def test_reading_its_metadata_refuses_it(bad_cassette: tuple[Path, str]) -> None:
    path, said = bad_cassette
    with pytest.raises(CassetteCorrupt) as caught:
        read_metadata(path)
    _assert_names_the_file_and_the_fix(caught.value, path, said)


def test_the_cassette_errors_are_one_tree_exported_at_the_root() -> None:
    from backtrader_ibkr_cp.cassettes import errors as old_home

    m = backtrader_ibkr_cp
    assert m.CassetteMiss is old_home.CassetteMiss
    assert m.CassetteCorrupt is old_home.CassetteCorrupt
    assert m.CassetteNotFound is old_home.CassetteNotFound
    assert issubclass(m.CassetteCorrupt, m.CassetteError)
    assert issubclass(m.CassetteError, m.MarketError)
