"""Wire schema: every rejection reason by hand, and properties on arbitrary input."""

from __future__ import annotations

import copy
import math

import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from models.schema import (
    EARLIEST_TS,
    LATEST_TS,
    MAX_BATCH_SPAN_S,
    MAX_POINTS,
    MAX_TEXT,
    WIRE_METRICS,
    Rejection,
    Telemetry,
    _check_column,
    _plainly_valid,
    decode,
    encode,
    validate,
)
from tests.conftest import FUZZ_SCALE

T = 1_664_887_505.0  # 2022-10-04, inside the plausible range

PROPERTY = settings(database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# make check runs the largest properties on a tenth of their examples (FUZZ_SCALE=0.1).
MANY = max(200, round(2000 * FUZZ_SCALE))


def pods(**override):
    body = {
        "v": 1,
        "family": "pods",
        "entity": "user-svc",
        "time": T,
        "ts": [T - 10.0, T - 5.0],
        "metrics": {"error_rate": [0.01, 0.02], "request_rate": [100.0, 120.0]},
    }
    body.update(override)
    return body


def social(**override):
    body = {
        "v": 1,
        "family": "social",
        "entity": "social/eu-west",
        "time": T,
        "ts": [T - 3.0, T - 1.0],
        "text": ["is it down?", "new album!"],
    }
    body.update(override)
    return body


def without(body, key):
    body = dict(body)
    del body[key]
    return body


def assert_rejected(result, reason):
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    assert result.detail


# ---------------------------------------------------------------------------
# Hand cases, one group per reason


@pytest.mark.parametrize("raw", [b"", b"{", b"{'v': 1}", b"\xff\xfe", b"[1, 2", b"nope"])
def test_not_json(raw):
    assert_rejected(decode(raw), "not_json")


@pytest.mark.parametrize("body", [[], [pods()], "pods", 1, 1.5, None, True])
def test_not_object(body):
    assert_rejected(validate(body), "not_object")
    assert_rejected(decode(orjson.dumps(body)), "not_object")


@pytest.mark.parametrize("key", ["v", "family", "entity", "time", "ts"])
def test_missing_envelope_field(key):
    result = validate(without(pods(), key))
    assert_rejected(result, "missing_field")
    assert repr(key) in result.detail


@pytest.mark.parametrize("metrics", [None, {}, [], "error_rate"])
def test_missing_or_empty_metrics(metrics):
    body = pods() if metrics is None else pods(metrics=metrics)
    if metrics is None:
        del body["metrics"]
    assert_rejected(validate(body), "missing_field")


@pytest.mark.parametrize("v", [0, 2, -1, "1", 1.0, True, None, [1]])
def test_unsupported_version(v):
    assert_rejected(validate(pods(v=v)), "unsupported_version")


@pytest.mark.parametrize("family", ["kafka", "Pods", "", 3, None])
def test_unknown_family(family):
    assert_rejected(validate(pods(family=family)), "unknown_family")


@pytest.mark.parametrize("family", [[], ["pods"], {}, {"pods": 1}])
def test_unhashable_family_is_rejected_not_raised(family):
    # A JSON array or object where the family name belongs must be refused like
    # any other unknown family, never crash the validator.
    result = validate(pods(family=family))
    assert isinstance(result, Rejection)
    assert result.reason in {"unknown_family", "wrong_type"}
    result = decode(orjson.dumps(pods(family=family)))
    assert isinstance(result, Rejection)
    assert result.reason in {"unknown_family", "wrong_type"}


@pytest.mark.parametrize(
    ("override", "reasons"),
    [
        ({"time": 10**400, "ts": []}, {"wrong_type", "implausible_time"}),
        ({"ts": [T, 10**400]}, {"wrong_type", "implausible_time", "non_finite"}),
        (
            {"metrics": {"error_rate": [0.1, 10**400]}},
            {"wrong_type", "non_finite", "ratio_out_of_range"},
        ),
    ],
)
def test_huge_python_int_is_rejected_not_raised(override, reasons):
    # orjson turns integers beyond 64 bits into floats, but validate() is also
    # called on Python objects (streams/embedded.py) and promises never to raise.
    body = pods(**override)
    if override.get("ts") == []:
        body["metrics"] = {"error_rate": []}
    result = validate(body)
    assert isinstance(result, Rejection)
    assert result.reason in reasons


@pytest.mark.parametrize(
    "override",
    [
        {"entity": 5},
        {"entity": ""},
        {"entity": None},
        {"entity": ["user-svc"]},
        {"entity": "x" * 201},
        {"time": "2022-10-04"},
        {"time": None},
        {"time": True},
        {"time": [T]},
        {"time": math.nan},
        {"time": math.inf},
        {"ts": "now"},
        {"ts": {"0": T}},
        {"ts": [T, "T"]},
        {"ts": [T, None]},
        {"ts": [T, False]},
        {"metrics": {"error_rate": 0.1}},
        {"metrics": {"error_rate": "0.1,0.2"}},
        {"metrics": {"error_rate": [0.1, "0.2"]}},
        {"metrics": {"error_rate": [0.1, None]}},
        {"metrics": {"error_rate": [0.1, True]}},
    ],
)
def test_wrong_type(override):
    assert_rejected(validate(pods(**override)), "wrong_type")


@pytest.mark.parametrize("text", [None, "is it down?", [1, 2], ["ok", None]])
def test_wrong_type_social_text(text):
    body = social(text=text)
    if text is None:
        del body["text"]
    assert_rejected(validate(body), "wrong_type")


def test_unknown_entity_is_asked_of_the_callback():
    asked = []

    def known(entity):
        asked.append(entity)
        return entity == "user-svc"

    assert_rejected(validate(pods(entity="ghost-svc"), known), "unknown_entity")
    assert isinstance(validate(pods(), known), Telemetry)
    assert asked == ["ghost-svc", "user-svc"]
    raw = orjson.dumps(pods(entity="ghost-svc"))
    assert_rejected(decode(raw, known), "unknown_entity")


@pytest.mark.parametrize(
    "override",
    [
        {"time": 0.0, "ts": []},
        {"time": EARLIEST_TS - 1, "ts": []},
        {"time": LATEST_TS + 1, "ts": []},
        {"time": 1e12, "ts": []},
        {"ts": [T + 0.001, T]},  # a sample after the batch was cut
        {"ts": [T - MAX_BATCH_SPAN_S - 0.5, T]},  # older than the batch span allows
    ],
)
def test_implausible_time(override):
    body = pods(**override)
    n = len(body["ts"])
    body["metrics"] = {"error_rate": [0.0] * n}
    assert_rejected(validate(body), "implausible_time")


def test_time_and_span_bounds_are_inclusive():
    for time in (EARLIEST_TS + MAX_BATCH_SPAN_S, LATEST_TS):
        body = pods(time=time, ts=[time - MAX_BATCH_SPAN_S, time])
        body["metrics"] = {"error_rate": [0.0, 0.0]}
        result = validate(body)
        assert isinstance(result, Telemetry), result
        assert result.ts == [time - MAX_BATCH_SPAN_S, time]


def test_oversized_batch():
    ts = [T] * (MAX_POINTS + 1)
    assert_rejected(validate(pods(ts=ts, metrics={"error_rate": [0.0] * len(ts)})), "oversized")
    ts = ts[:MAX_POINTS]
    result = validate(pods(ts=ts, metrics={"error_rate": [0.0] * len(ts)}))
    assert isinstance(result, Telemetry)
    assert result.samples == MAX_POINTS


def test_oversized_mention():
    assert_rejected(validate(social(text=["x" * (MAX_TEXT + 1), "ok"])), "oversized")
    result = validate(social(text=["x" * MAX_TEXT, "ok"]))
    assert isinstance(result, Telemetry)
    assert len(result.text[0]) == MAX_TEXT


@pytest.mark.parametrize(
    "override",
    [
        {"ts": [T, math.nan]},
        {"ts": [-math.inf, T]},
        {"metrics": {"error_rate": [math.nan, 0.1]}},
        {"metrics": {"request_rate": [math.inf, 1.0]}},
        {"metrics": {"request_rate": [1.0, -math.inf]}},
    ],
)
def test_non_finite(override):
    assert_rejected(validate(pods(**override)), "non_finite")


@pytest.mark.parametrize(
    "metrics",
    [
        {"request_rate": [1.0, -1.0]},
        {"p99_latency_ms": [-1e-9, 1.0]},
        {"restarts": [-1, 0]},
        {"error_rate": [-0.5, 0.0]},  # negative wins over the ratio range
    ],
)
def test_negative_value(metrics):
    assert_rejected(validate(pods(metrics=metrics)), "negative_value")


@pytest.mark.parametrize(
    ("family", "metric"),
    [("pods", "error_rate"), ("pods", "ready_ratio"), ("redis", "memory_used_ratio")],
)
def test_ratio_out_of_range(family, metric):
    body = pods(family=family, metrics={metric: [0.5, 1.0000001]})
    assert_rejected(validate(body), "ratio_out_of_range")
    body = pods(family=family, metrics={metric: [0.0, 1.0]})
    assert isinstance(validate(body), Telemetry)


def test_values_above_one_are_fine_when_not_a_ratio():
    result = validate(pods(metrics={"p99_latency_ms": [250.0, 1e6]}))
    assert isinstance(result, Telemetry)
    assert result.metrics == {"p99_latency_ms": [250.0, 1e6]}


@pytest.mark.parametrize(
    "body",
    [
        pods(metrics={"error_rate": [0.1]}),
        pods(metrics={"error_rate": [0.1, 0.2, 0.3]}),
        pods(metrics={"error_rate": [0.1, 0.2], "request_rate": []}),
        social(text=["just one"]),
        social(text=["a", "b", "c"]),
    ],
)
def test_length_mismatch(body):
    assert_rejected(validate(body), "length_mismatch")


@pytest.mark.parametrize(
    ("family", "metric"),
    [
        ("pods", "evictions"),  # a redis metric on a pod
        ("redis", "error_rate"),
        ("logins", "success_ratio"),  # a series the windows derive, not a wire metric
        ("pods", "Error_Rate"),
    ],
)
def test_unknown_metric(family, metric):
    result = validate(pods(family=family, metrics={metric: [0.0, 0.0]}))
    assert_rejected(result, "unknown_metric")
    assert metric in result.detail


# ---------------------------------------------------------------------------
# Valid messages


def test_valid_metrics_round_trip():
    tel = Telemetry(
        "redis",
        "redis/node-07",
        T,
        [T - 10.0, T - 5.0, T],
        {"memory_used_ratio": [0.7, 0.71, 0.72], "evictions": [0.0, 3.0, 12.0]},
    )
    raw = encode(tel)
    assert orjson.loads(raw)["v"] == 1
    back = decode(raw)
    assert back == tel
    assert back.samples == 6
    assert back.text == []


def test_valid_social_round_trip():
    tel = Telemetry("social", "social/us-east", T, [T - 2.0, T], text=["down?", "é 🎵"])
    back = decode(encode(tel))
    assert back == tel
    assert back.samples == 2
    assert back.metrics == {}
    assert "metrics" not in orjson.loads(encode(tel))


def test_integer_time_becomes_float():
    result = validate(pods(time=int(T), ts=[int(T) - 1], metrics={"restarts": [0]}))
    assert isinstance(result, Telemetry)
    assert result.time == float(int(T))
    assert type(result.time) is float


def test_empty_batch_is_valid():
    result = validate(pods(ts=[], metrics={"error_rate": []}))
    assert isinstance(result, Telemetry)
    assert result.samples == 0


# ---------------------------------------------------------------------------
# Strategies

SAFE_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | INT64
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1.0, EARLIEST_TS, LATEST_TS, T])
    | SAFE_TEXT
    | st.sampled_from(["v", "pods", "redis", "logins", "social", "user-svc"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            SAFE_TEXT | st.sampled_from(["v", "family", "entity", "time", "ts", "metrics"]),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)

FAMILIES = ["pods", "redis", "logins"]


@st.composite
def valid_bodies(draw, min_points=0, families=FAMILIES):
    family = draw(st.sampled_from(families))
    entity = draw(
        st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=200)
    )
    time = draw(st.floats(EARLIEST_TS + MAX_BATCH_SPAN_S, LATEST_TS))
    offsets = draw(st.lists(st.floats(0.0, MAX_BATCH_SPAN_S), min_size=min_points, max_size=12))
    ts = [time - o for o in offsets]
    specs = WIRE_METRICS[family]
    names = draw(st.lists(st.sampled_from(sorted(specs)), min_size=1, unique=True))
    metrics = {}
    for name in names:
        hi = 1.0 if specs[name].ratio else 1e9
        values = st.floats(0.0, hi) | st.integers(0, int(hi))
        metrics[name] = draw(st.lists(values, min_size=len(ts), max_size=len(ts)))
    return {"v": 1, "family": family, "entity": entity, "time": time, "ts": ts, "metrics": metrics}


@st.composite
def valid_social_bodies(draw):
    time = draw(st.floats(EARLIEST_TS + MAX_BATCH_SPAN_S, LATEST_TS))
    offsets = draw(st.lists(st.floats(0.0, MAX_BATCH_SPAN_S), max_size=8))
    texts = draw(
        st.lists(
            st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40),
            min_size=len(offsets),
            max_size=len(offsets),
        )
    )
    return {
        "v": 1,
        "family": "social",
        "entity": draw(st.sampled_from(["social/eu-west", "social/us-east"])),
        "time": time,
        "ts": [time - o for o in offsets],
        "text": texts,
    }


@st.composite
def near_valid_bodies(draw):
    """A valid message with one field replaced by, or holding, an arbitrary value."""
    body = draw(valid_bodies() | valid_social_bodies())
    key = draw(st.sampled_from(["v", "family", "entity", "time", "ts", "metrics", "text"]))
    action = draw(st.sampled_from(["replace", "delete", "nest"]))
    if action == "delete":
        body.pop(key, None)
    elif action == "replace":
        body[key] = draw(JSON_VALUES)
    elif isinstance(body.get(key), list) and body[key]:
        i = draw(st.integers(0, len(body[key]) - 1))
        body[key][i] = draw(JSON_VALUES)
    elif isinstance(body.get(key), dict):
        column = draw(st.sampled_from(sorted(body[key])))
        body[key][column] = draw(JSON_VALUES)
    return body


def check_outcome(result):
    assert isinstance(result, Telemetry | Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, str)
        assert result.reason
        assert isinstance(result.detail, str)
        assert result.detail
    else:
        assert result.family in WIRE_METRICS


# ---------------------------------------------------------------------------
# Properties


@settings(PROPERTY, max_examples=MANY)
@given(
    st.binary(max_size=200) | JSON_VALUES.map(orjson.dumps) | near_valid_bodies().map(orjson.dumps)
)
@example(b'{"v":1,"family":[],"entity":"x","time":1e9,"ts":[]}')
def test_decode_never_raises(raw):
    check_outcome(decode(raw))


@settings(PROPERTY, max_examples=MANY)
@given(JSON_VALUES | near_valid_bodies())
@example({"v": 1, "family": {}, "entity": "x", "time": 1e9, "ts": []})
def test_validate_never_raises(body):
    check_outcome(validate(body))


@settings(PROPERTY, max_examples=500)
@given(valid_bodies() | valid_social_bodies())
def test_valid_messages_validate_and_round_trip(body):
    original = copy.deepcopy(body)
    tel = validate(body)
    assert isinstance(tel, Telemetry), tel
    assert body == original  # validation does not touch its input
    assert tel.family == body["family"]
    assert tel.entity == body["entity"]
    assert tel.time == body["time"]
    assert tel.ts == body["ts"]
    if tel.family == "social":
        assert tel.text == body["text"]
        assert tel.samples == len(body["ts"])
    else:
        assert tel.metrics == body["metrics"]
        assert tel.samples == len(body["ts"]) * len(body["metrics"])
    assert decode(encode(tel)) == tel
    assert decode(orjson.dumps(body)) == tel


def _first_metric(body):
    return sorted(body["metrics"])[0]


def _set_value(value):
    def mutate(body):
        body["metrics"][_first_metric(body)][0] = value

    return mutate


def _set_ratio(body):
    ratios = [m for m, spec in WIRE_METRICS[body["family"]].items() if spec.ratio]
    assume(ratios)
    body["metrics"][ratios[0]] = [1.5] * len(body["ts"])


def _unknown_metric(body):
    body["metrics"]["no_such_metric"] = [0.0] * len(body["ts"])


def _extra_value(body):
    body["metrics"][_first_metric(body)].append(0.0)


MUTATIONS = {
    "v=2": (lambda b: b.update(v=2), "unsupported_version"),
    "v=true": (lambda b: b.update(v=True), "unsupported_version"),
    "family": (lambda b: b.update(family="kafka"), "unknown_family"),
    "entity empty": (lambda b: b.update(entity=""), "wrong_type"),
    "entity long": (lambda b: b.update(entity="e" * 201), "wrong_type"),
    "entity number": (lambda b: b.update(entity=7), "wrong_type"),
    "time text": (lambda b: b.update(time="soon"), "wrong_type"),
    "time 1970": (lambda b: b.update(time=1.0), "implausible_time"),
    "ts future": (lambda b: b["ts"].__setitem__(0, b["time"] + 1.0), "implausible_time"),
    "ts ancient": (
        lambda b: b["ts"].__setitem__(0, b["time"] - MAX_BATCH_SPAN_S - 1.0),
        "implausible_time",
    ),
    "ts nan": (lambda b: b["ts"].__setitem__(0, math.nan), "non_finite"),
    "ts text": (lambda b: b["ts"].__setitem__(0, "t"), "wrong_type"),
    "value nan": (_set_value(math.nan), "non_finite"),
    "value inf": (_set_value(math.inf), "non_finite"),
    "value negative": (_set_value(-1.0), "negative_value"),
    "value text": (_set_value("1"), "wrong_type"),
    "ratio": (_set_ratio, "ratio_out_of_range"),
    "extra value": (_extra_value, "length_mismatch"),
    "unknown metric": (_unknown_metric, "unknown_metric"),
    "no metrics": (lambda b: b.update(metrics={}), "missing_field"),
    "drop v": (lambda b: b.pop("v"), "missing_field"),
    "drop ts": (lambda b: b.pop("ts"), "missing_field"),
}

# JSON has no NaN or infinity: orjson writes them as null, so these only reach validate().
NOT_ON_THE_WIRE = {"ts nan", "value nan", "value inf"}


@settings(PROPERTY, max_examples=600)
@given(valid_bodies(min_points=1), st.sampled_from(sorted(MUTATIONS)))
def test_one_bad_field_is_rejected_for_the_right_reason(body, name):
    mutate, reason = MUTATIONS[name]
    mutate(body)
    result = validate(body)
    assert_rejected(result, reason)
    if name not in NOT_ON_THE_WIRE:
        assert_rejected(decode(orjson.dumps(body)), reason)


@settings(PROPERTY, max_examples=200)
@given(valid_bodies(), st.booleans())
def test_unknown_entity_is_rejected_only_when_unknown(body, known):
    result = validate(body, lambda entity: known)
    if known:
        assert isinstance(result, Telemetry)
    else:
        assert_rejected(result, "unknown_entity")


COLUMN_VALUES = st.one_of(
    st.floats(min_value=-2, max_value=3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-2, max_value=2**65),
    st.booleans(),
    st.text(max_size=2),
    st.none(),
)


@settings(PROPERTY, max_examples=MANY)
@given(
    st.sampled_from(["redis", "pods", "logins"]).flatmap(
        lambda family: st.tuples(
            st.just(family),
            st.integers(0, 4),
            st.dictionaries(
                st.sampled_from([*WIRE_METRICS[family], "nope"]),
                st.lists(COLUMN_VALUES, max_size=5) | COLUMN_VALUES,
                max_size=4,
            ),
        )
    )
)
def test_columns_judged_at_once_pass_only_where_each_column_passes(case):
    family, n, metrics = case
    specs = WIRE_METRICS[family]
    plain = _plainly_valid(metrics, n, specs)
    each = all(
        name in specs and _check_column(name, col, n, specs[name]) is None
        for name, col in metrics.items()
    )
    if plain:
        assert each, metrics
    # And the common case takes the quick way.
    columns = metrics.values()
    if each and all(type(v) is float for col in columns if type(col) is list for v in col):
        assert plain, metrics
