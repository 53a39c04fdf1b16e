"""Tests for the v1 MQTT topic and payload schema (``protocols/mqtt_v1.py``).

Covers: ``GatewayTopics`` topic names and validation of ids and stream names; ``parse_topic`` and its
round trip; the uplink envelope (a byte-exact vector, equivalence of ``data=`` / ``data_json=`` / plain
``json.dumps`` checked with hypothesis, and the ``decode_envelope`` round trip); ``decode_command`` for
valid and invalid commands (each :class:`ProtocolError` names the problem), a 2,000-example fuzz on
arbitrary bytes and a few pathological payloads; and ``salvage_command_id``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.mqtt_v1 import (
    ROOT,
    Command,
    Envelope,
    GatewayTopics,
    ParsedTopic,
    check_stream,
    decode_command,
    decode_envelope,
    encode_data,
    encode_envelope,
    message_id,
    parse_topic,
    salvage_command_id,
)

LIMIT = 64 * 1024

# -- strategies ----------------------------------------------------------------------------------------

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True)
stream_names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,15}(/[a-z0-9][a-z0-9_.-]{0,15}){0,3}", fullmatch=True).filter(
    lambda s: s not in ("status", "cmd")
)
seqs = st.integers(min_value=1, max_value=2**63 - 1)
timestamps = st.floats(allow_nan=False, allow_infinity=False)
json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


# -- topics --------------------------------------------------------------------------------------------


def test_gateway_topic_names() -> None:
    topics = GatewayTopics("store-1", "gw-1")
    assert ROOT == "storeedge/v1"
    assert topics.base == "storeedge/v1/store-1/gw-1"
    assert topics.status == "storeedge/v1/store-1/gw-1/status"
    assert topics.command == "storeedge/v1/store-1/gw-1/cmd"
    assert topics.stream("heartbeat") == "storeedge/v1/store-1/gw-1/heartbeat"
    assert topics.stream("health") == "storeedge/v1/store-1/gw-1/health"
    assert topics.stream("cmd/result") == "storeedge/v1/store-1/gw-1/cmd/result"
    assert topics.stream("counts/door-1") == "storeedge/v1/store-1/gw-1/counts/door-1"


@pytest.mark.parametrize(
    "bad_id",
    ["", "a/b", "+", "#", "gw+1", "gw#", "-gw", ".gw", "_gw", "gw 1", "a" * 65, "gw\n", "gw\x00", "gwé"],
)
def test_invalid_store_and_gateway_ids_are_rejected(bad_id: str) -> None:
    with pytest.raises(ProtocolError, match="gateway id"):
        GatewayTopics("store-1", bad_id)
    with pytest.raises(ProtocolError, match="store id"):
        GatewayTopics(bad_id, "gw-1")


def test_longest_valid_id_is_accepted() -> None:
    topics = GatewayTopics("s" * 64, "G.w_1-" + "x" * 58)
    assert topics.base == f"storeedge/v1/{'s' * 64}/G.w_1-{'x' * 58}"


@pytest.mark.parametrize(
    "bad_stream",
    [
        "",
        "status",
        "cmd",
        "Heartbeat",
        "counts/",
        "/counts",
        "counts//door",
        "a/b/c/d/e",
        "counts/+",
        "counts/#",
        "-counts",
        "counts door",
        "heartbeat\n",
    ],
)
def test_invalid_stream_names_are_rejected(bad_stream: str) -> None:
    with pytest.raises(ProtocolError, match="stream"):
        check_stream(bad_stream)
    with pytest.raises(ProtocolError):
        GatewayTopics("store-1", "gw-1").stream(bad_stream)


@pytest.mark.parametrize("stream", ["heartbeat", "cmd/result", "status/extra", "a/b/c/d", "counts/door-1.x_y"])
def test_valid_stream_names(stream: str) -> None:
    assert check_stream(stream) == stream


def test_parse_topic() -> None:
    assert parse_topic("storeedge/v1/store-1/gw-1/counts/door-1") == ParsedTopic("store-1", "gw-1", "counts/door-1")
    assert parse_topic("storeedge/v1/store-1/gw-1/status") == ParsedTopic("store-1", "gw-1", "status")


@pytest.mark.parametrize(
    "topic",
    ["", "storeedge/v1/store-1/gw-1", "storeedge/v2/store-1/gw-1/status", "other/v1/s/g/status", "storeedge"],
)
def test_parse_topic_rejects_foreign_topics(topic: str) -> None:
    with pytest.raises(ProtocolError, match="is not under storeedge/v1"):
        parse_topic(topic)


@settings(max_examples=150, deadline=None)
@given(store=ids, gateway=ids, stream=stream_names)
def test_parse_topic_round_trip(store: str, gateway: str, stream: str) -> None:
    topics = GatewayTopics(store, gateway)
    assert parse_topic(topics.stream(stream)) == ParsedTopic(store, gateway, stream)
    assert parse_topic(topics.status) == ParsedTopic(store, gateway, "status")
    assert parse_topic(topics.command) == ParsedTopic(store, gateway, "cmd")


# -- envelopes -----------------------------------------------------------------------------------------


def test_encode_envelope_vector() -> None:
    payload = encode_envelope(
        gateway_id="gw-1",
        stream="counts/door-1",
        seq=42,
        stream_seq=7,
        ts=1700000000.123456,
        data={"in": 3, "out": [1, 2.5, None, True], "name": "café ✓"},
    )
    assert payload == (
        b'{"v":1,"id":"gw-1:42","gateway":"gw-1","stream":"counts/door-1","seq":42,"stream_seq":7,'
        b'"ts":1700000000.123,"data":{"in":3,"out":[1,2.5,null,true],"name":"caf\xc3\xa9 \xe2\x9c\x93"}}'
    )


def test_encode_envelope_without_data_writes_null() -> None:
    payload = encode_envelope(gateway_id="g", stream="heartbeat", seq=1, stream_seq=1, ts=0.0)
    assert payload == (
        b'{"v":1,"id":"g:1","gateway":"g","stream":"heartbeat","seq":1,"stream_seq":1,"ts":0.0,"data":null}'
    )


def test_decode_envelope_of_vector() -> None:
    envelope = decode_envelope(
        encode_envelope(gateway_id="gw-1", stream="counts/door-1", seq=42, stream_seq=7, ts=1.5, data={"in": 3})
    )
    assert envelope == Envelope(
        v=1, id="gw-1:42", gateway="gw-1", stream="counts/door-1", seq=42, stream_seq=7, ts=1.5, data={"in": 3}
    )
    assert envelope.id == message_id("gw-1", 42)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"v":2,"id":"g:1","gateway":"g","stream":"s","seq":1,"stream_seq":1,"ts":1.0,"data":null}',
        b'{"v":1,"id":"g:0","gateway":"g","stream":"s","seq":0,"stream_seq":1,"ts":1.0,"data":null}',
        b'{"v":1,"id":"g:1","gateway":"g","stream":"s","seq":1,"stream_seq":1,"ts":1.0}',
        b'{"v":1,"id":"g:1","gateway":"g","stream":"s","seq":1,"stream_seq":1,"ts":1.0,"data":null,"x":1}',
    ],
)
def test_decode_envelope_rejects(payload: bytes) -> None:
    with pytest.raises(ProtocolError, match="not a v1 envelope"):
        decode_envelope(payload)


def reference_envelope(gateway: str, stream: str, seq: int, stream_seq: int, ts: float, data: Any) -> bytes:
    document = {
        "v": 1,
        "id": f"{gateway}:{seq}",
        "gateway": gateway,
        "stream": stream,
        "seq": seq,
        "stream_seq": stream_seq,
        "ts": round(ts, 3),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@settings(max_examples=250, deadline=None)
@given(gateway=ids, stream=stream_names, seq=seqs, stream_seq=seqs, ts=timestamps, data=json_data)
def test_encode_envelope_matches_json_dumps(
    gateway: str, stream: str, seq: int, stream_seq: int, ts: float, data: Any
) -> None:
    with_data = encode_envelope(gateway_id=gateway, stream=stream, seq=seq, stream_seq=stream_seq, ts=ts, data=data)
    with_json = encode_envelope(
        gateway_id=gateway, stream=stream, seq=seq, stream_seq=stream_seq, ts=ts, data_json=encode_data(data)
    )
    assert with_data == with_json
    # Same document as json.dumps builds (number spelling may differ, e.g. 1e16 vs 1e+16).
    assert json.loads(with_data) == json.loads(reference_envelope(gateway, stream, seq, stream_seq, ts, data))
    assert list(json.loads(with_data)) == ["v", "id", "gateway", "stream", "seq", "stream_seq", "ts", "data"]


@settings(max_examples=250, deadline=None)
@given(gateway=ids, stream=stream_names, seq=seqs, stream_seq=seqs, ts=timestamps, data=json_data)
def test_decode_envelope_round_trip(gateway: str, stream: str, seq: int, stream_seq: int, ts: float, data: Any) -> None:
    payload = encode_envelope(gateway_id=gateway, stream=stream, seq=seq, stream_seq=stream_seq, ts=ts, data=data)
    envelope = decode_envelope(payload)
    assert envelope.v == 1
    assert envelope.id == message_id(gateway, seq)
    assert envelope.gateway == gateway
    assert envelope.stream == stream
    assert envelope.seq == seq
    assert envelope.stream_seq == stream_seq
    assert envelope.ts == round(ts, 3)
    assert envelope.data == data


def test_encode_data_is_compact_and_not_ascii_escaped() -> None:
    assert encode_data({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'.encode()


# -- commands ------------------------------------------------------------------------------------------


def test_decode_valid_command() -> None:
    command = decode_command(b'{"id":"c-1","type":"ping","args":{"n":1},"ts":1700000000.5}', max_bytes=LIMIT)
    assert command == Command(id="c-1", type="ping", args={"n": 1}, ts=1700000000.5)


def test_decode_minimal_command_defaults() -> None:
    command = decode_command(b'{"id":"c-1","type":"tags.refresh_all"}', max_bytes=LIMIT)
    assert command.args == {}
    assert command.ts is None


def test_command_exactly_at_limit_is_accepted() -> None:
    payload = b'{"id":"c-1","type":"ping"}'
    assert decode_command(payload, max_bytes=len(payload)).id == "c-1"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"id":"c-1","type":', "malformed JSON"),
        (b"", "malformed JSON"),
        (b"\xff\xfe\x00garbage", "malformed JSON"),
        (b'{"id":"c-1","type":"ping"}trailing', "malformed JSON"),
        (b'["c-1","ping"]', "must be a JSON object"),
        (b'"ping"', "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b'{"type":"ping"}', "field 'id'"),
        (b'{"id":"","type":"ping"}', "field 'id'"),
        (b'{"id":"has space","type":"ping"}', "field 'id'"),
        (b'{"id":7,"type":"ping"}', "field 'id'"),
        (b'{"id":"' + b"x" * 129 + b'","type":"ping"}', "field 'id'"),
        (b'{"id":"c-1"}', "field 'type'"),
        (b'{"id":"c-1","type":"Ping"}', "field 'type'"),
        (b'{"id":"c-1","type":"1ping"}', "field 'type'"),
        (b'{"id":"c-1","type":"tags/refresh"}', "field 'type'"),
        (b'{"id":"c-1","type":"ping","args":[1]}', "field 'args'"),
        (b'{"id":"c-1","type":"ping","ts":"now"}', "field 'ts'"),
        (b'{"id":"c-1","type":"ping","extra":1}', "field 'extra'"),
    ],
)
def test_decode_command_rejects_with_named_problem(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command(payload, max_bytes=LIMIT)
    assert message in str(info.value)


def test_extra_key_message_says_extra_inputs_are_forbidden() -> None:
    with pytest.raises(ProtocolError, match="Extra inputs are not permitted"):
        decode_command(b'{"id":"c-1","type":"ping","extra":1}', max_bytes=LIMIT)


def test_too_large_command_is_rejected_before_parsing() -> None:
    payload = b'{"id":"c-1","type":"ping","args":{"pad":"' + b"x" * 200 + b'"}}'
    with pytest.raises(ProtocolError) as info:
        decode_command(payload, max_bytes=100)
    assert "too large" in str(info.value)
    assert f"{len(payload)} bytes > limit 100" in str(info.value)
    # Even garbage that is too large is reported as too large, not as malformed.
    with pytest.raises(ProtocolError, match="too large"):
        decode_command(b"\xff" * 101, max_bytes=100)


def test_invalid_command_lists_several_problems() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_command(b'{"a":1,"b":2,"c":3,"d":4}', max_bytes=LIMIT)
    message = str(info.value)
    assert message.startswith("invalid command: ")
    assert "field 'id'" in message
    assert "more" in message


@settings(max_examples=2000, deadline=None)
@given(payload=st.binary(max_size=300))
def test_decode_command_fuzz_arbitrary_bytes(payload: bytes) -> None:
    try:
        result = decode_command(payload, max_bytes=256)
    except ProtocolError:
        return
    assert isinstance(result, Command)


json_text_chars = st.sampled_from(list('{}[]":,. -+eE0123456789abcdefilnrstuy\\') + ["id", "type", "args", "ts"])


@settings(max_examples=1000, deadline=None)
@given(payload=st.lists(json_text_chars, max_size=60).map(lambda parts: "".join(parts).encode()))
def test_decode_command_fuzz_json_like_bytes(payload: bytes) -> None:
    try:
        result = decode_command(payload, max_bytes=LIMIT)
    except ProtocolError:
        return
    assert isinstance(result, Command)


@settings(max_examples=300, deadline=None)
@given(raw=json_data)
def test_decode_command_fuzz_json_values(raw: Any) -> None:
    payload = json.dumps(raw).encode()
    try:
        result = decode_command(payload, max_bytes=LIMIT)
    except ProtocolError:
        return
    assert isinstance(result, Command)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[" * 50_000, id="deeply-nested-array"),
        pytest.param(b'{"id":"c-1","type":"ping","args":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_001, id="deep-args"),
        pytest.param(b"1" * 5_000, id="huge-integer"),
        pytest.param(b'{"id":"c-1","type":"ping","args":{"n":' + b"9" * 5_000 + b"}}", id="huge-integer-arg"),
    ],
)
def test_decode_command_pathological_payloads_raise_protocol_error(payload: bytes) -> None:
    """Payloads within the size limit must never escape as anything but ProtocolError."""
    assert len(payload) <= LIMIT
    with pytest.raises(ProtocolError):
        decode_command(payload, max_bytes=LIMIT)


# -- salvage_command_id --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"id":"c-1","type":"Bad Type","extra":1}', ("c-1", "Bad Type")),
        (b'{"id":"c-1"}', ("c-1", None)),
        (b'{"type":"ping"}', (None, "ping")),
        (b'{"id":7,"type":["ping"]}', (None, None)),
        (b'{"id":"' + b"x" * 129 + b'","type":"' + b"t" * 65 + b'"}', (None, None)),
        (b'{"id":"' + b"x" * 128 + b'","type":"' + b"t" * 64 + b'"}', ("x" * 128, "t" * 64)),
        (b"not json", (None, None)),
        (b"\xff\xfe\x00", (None, None)),
        (b'["c-1","ping"]', (None, None)),
        (b"null", (None, None)),
        (b"[" * 50_000, (None, None)),
    ],
)
def test_salvage_command_id(payload: bytes, expected: tuple[str | None, str | None]) -> None:
    assert salvage_command_id(payload) == expected


def test_salvage_command_id_survives_huge_integers() -> None:
    """Best effort, but it must not raise: it runs in the error path of an invalid command."""
    payload = b'{"id":"c-1","type":"ping","args":{"n":' + b"9" * 5_000 + b"}}"
    cid, ctype = salvage_command_id(payload)
    assert cid in (None, "c-1")
    assert ctype in (None, "ping")


@settings(max_examples=500, deadline=None)
@given(payload=st.binary(max_size=200))
def test_salvage_command_id_never_raises(payload: bytes) -> None:
    cid, ctype = salvage_command_id(payload)
    assert cid is None or (isinstance(cid, str) and len(cid) <= 128)
    assert ctype is None or (isinstance(ctype, str) and len(ctype) <= 64)
