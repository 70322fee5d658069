"""Record modes, matching and playback order, with plain ``requests`` against the simulator."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import requests

from backtrader_ibkr_cp.cassettes import (
    Cassette,
    CassetteMiss,
    CassetteNotFound,
    read_metadata,
    translate_cassette_error,
)
from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.simulator import GatewaySimulator

HISTORY = "/iserver/marketdata/history"
QUERY = {"conid": "265598", "bar": "1h", "period": "1d", "startTime": "20240306-21:00:00"}


def _history(base: str, **params: str) -> dict[str, object]:
    body = requests.get(base + HISTORY, params=params or QUERY, verify=False, timeout=5).json()
    assert isinstance(body, dict)
    return body


def test_replay_needs_no_network_and_ignores_scheme_host_and_port(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None, closed_port: int
) -> None:
    path = tmp_path / "h.json"
    with Cassette(path, "once"):
        recorded = _history(sim.api_url)
    sim.stop()
    with Cassette(path):  # nothing listens on closed_port, and it is http, not https
        replayed = _history(f"http://127.0.0.1:{closed_port}/v1/api")
    assert replayed == recorded and len(recorded["data"]) == 7  # type: ignore[arg-type]


def test_query_order_does_not_matter(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "h.json"
    with Cassette(path, "once"):
        recorded = _history(sim.api_url)
    reordered = dict(reversed(list(QUERY.items())))
    with Cassette(path):
        assert _history("https://localhost:5000/v1/api", **reordered) == recorded


def test_a_request_not_in_the_cassette_raises_cassette_miss_naming_it(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "h.json"
    with Cassette(path, "once"):
        _history(sim.api_url)
    other = {**QUERY, "bar": "5min"}
    with pytest.raises(CassetteMiss) as caught, Cassette(path):
        _history("https://localhost:5000/v1/api", **other)
    miss = caught.value
    assert isinstance(miss, ConfigError)
    assert miss.method == "GET" and miss.path == "/v1/api" + HISTORY
    assert "bar=5min" in miss.query and "conid=265598" in miss.query
    assert "GET /v1/api/iserver/marketdata/history?bar=5min&conid=265598" in str(miss)
    assert "ibkr-cp record" in str(miss) and "record_mode=" in str(miss)


def test_translate_finds_the_vcrpy_error_inside_a_wrapper(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "h.json"
    with Cassette(path, "once"):
        _history(sim.api_url)
    with Cassette(path):
        try:
            requests.get("https://localhost:5000/v1/api/iserver/accounts", timeout=5)
        except Exception as raw:
            wrapped = RuntimeError("transport failed")
            wrapped.__cause__ = raw
            error = raw
        else:  # pragma: no cover - the request must not be answered
            pytest.fail("a request missing from the cassette was answered")
    mapped = translate_cassette_error(wrapped)
    assert isinstance(mapped, CassetteMiss) and mapped.path == "/v1/api/iserver/accounts"
    assert translate_cassette_error(error) is not None
    assert translate_cassette_error(ValueError("unrelated")) is None


def test_polls_replay_in_recorded_order_and_only_as_often_as_recorded(
    tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "snap.json"
    with GatewaySimulator(seed=1, speed=0.0) as live:
        base = live.api_url
        with Cassette(path, "once"):
            requests.get(base + "/iserver/accounts", verify=False)
            first = requests.get(base + "/iserver/marketdata/snapshot?conids=265598&fields=31",
                                 verify=False).json()  # fmt: skip
            second = requests.get(base + "/iserver/marketdata/snapshot?conids=265598&fields=31",
                                  verify=False).json()  # fmt: skip
    assert first != second  # the pre-flight answer, then one with fields
    url = "https://localhost:5000/v1/api/iserver/marketdata/snapshot?conids=265598&fields=31"
    with pytest.raises(CassetteMiss, match="recorded fewer times") as caught, Cassette(path):
        assert requests.get(url).json() == first
        assert requests.get(url).json() == second
        requests.get(url)
    assert caught.value.reason == "already_played"


def test_session_endpoints_replay_any_number_of_times(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "session.json"
    with Cassette(path, "once"):
        status = requests.post(sim.api_url + "/iserver/auth/status", json={}, verify=False)
        requests.post(sim.api_url + "/tickle", json={}, verify=False)
    with Cassette(path) as cassette:
        for _ in range(5):
            replayed = requests.post("https://localhost:5000/v1/api/iserver/auth/status", json={})
            assert replayed.json()["authenticated"] is status.json()["authenticated"] is True
            assert replayed.json()["MAC"] == "REDACTED"
            assert requests.post("https://localhost:5000/v1/api/tickle", json={}).ok
        assert cassette.play_count == 10


def test_post_bodies_are_matched_as_json(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "post.json"
    url = "/iserver/marketdata/unsubscribe"
    with Cassette(path, "once"):
        requests.post(sim.api_url + url, json={"conid": 265598}, verify=False)
    with Cassette(path):
        replay = requests.post(  # same JSON, other spacing
            "https://localhost:5000/v1/api" + url,
            data=b'{ "conid" : 265598 }',
            headers={"Content-Type": "application/json"},
        )
        assert replay.status_code in (200, 500)
        with pytest.raises(Exception) as caught:
            requests.post("https://localhost:5000/v1/api" + url, json={"conid": 8314})
    assert isinstance(translate_cassette_error(caught.value), CassetteMiss)


def test_replay_only_is_the_default_and_a_missing_cassette_fails_at_start(
    tmp_path: Path,
) -> None:
    cassette = Cassette(tmp_path / "absent.json")
    assert cassette.record_mode == "none"
    with pytest.raises(CassetteNotFound, match="does not exist; record it first: `ibkr-cp record"):
        cassette.start()
    assert not cassette.active


def test_an_unknown_record_mode_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'none', 'once', 'new_episodes', 'all'"):
        Cassette(tmp_path / "x.json", record_mode="sometimes")


def test_only_one_cassette_at_a_time(sim: GatewaySimulator, tmp_path: Path) -> None:
    with (
        Cassette(tmp_path / "a.json", "once"),
        pytest.raises(ConfigError, match="already active"),
    ):
        Cassette(tmp_path / "b.json", "once").start()


def test_new_episodes_appends_and_once_does_not_record_into_an_existing_file(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "h.json"
    with Cassette(path, "once"):
        _history(sim.api_url)
    other = {**QUERY, "bar": "2h"}
    with pytest.raises(CassetteMiss), Cassette(path, "once"):
        _history(sim.api_url, **other)
    with Cassette(path, "new_episodes"):
        _history(sim.api_url)  # replayed
        _history(sim.api_url, **other)  # recorded
    stored = json.loads(path.read_text())
    assert len(stored["interactions"]) == 2


def test_gzip_cassettes_and_metadata_round_trip(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    plain, packed = tmp_path / "h.json", tmp_path / "h.json.gz"
    for path in (plain, packed):
        with Cassette(path, "once", metadata={"symbols": ["AAPL"], "synthetic": True}):
            recorded = _history(sim.api_url)
    unpacked = json.loads(gzip.decompress(packed.read_bytes()))
    assert unpacked.keys() == json.loads(plain.read_text()).keys()
    assert packed.stat().st_size < plain.stat().st_size
    assert read_metadata(packed) == {"symbols": ["AAPL"], "synthetic": True}
    with Cassette(packed):
        assert _history("https://localhost:5000/v1/api") == recorded


def test_bodies_are_stored_as_json_values_one_interaction_per_line(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "h.json"
    with Cassette(path, "once"):
        _history(sim.api_url)
    lines = path.read_text().splitlines()
    assert lines[0].startswith('{"version":1,"format":"backtrader_ibkr_cp/1"')
    interaction = json.loads(lines[1])
    assert isinstance(interaction["response"]["body"]["json"]["data"], list)


def test_as_cassette_turns_a_store_argument_into_a_cassette(tmp_path: Path) -> None:
    from backtrader_ibkr_cp.cassettes import as_cassette, replay_pacing_limits

    assert as_cassette(None) is None
    with pytest.raises(ConfigError, match="needs a cassette"):
        as_cassette(None, "once")
    made = as_cassette(tmp_path / "c.json")
    assert made is not None and made.record_mode == "none" and made.path == tmp_path / "c.json"
    given = Cassette(tmp_path / "c.json", "once")
    assert as_cassette(given) is given and as_cassette(given, "once") is given
    with pytest.raises(ConfigError, match="conflicts"):
        as_cassette(given, "all")
    with pytest.raises(ConfigError, match="not a path or a Cassette"):
        as_cassette(42)  # type: ignore[arg-type]
    assert replay_pacing_limits().history_concurrency == 1  # serial: no latency to overlap
