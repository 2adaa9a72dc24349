"""The scenario format is strict: a key, a target or a time that cannot be
what the author meant is refused at load, in one line naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.scenario import SCENARIO_DIR, Scenario, load_scenarios

TINY = """
name = "tiny"
start = "2022-10-04T10:00:00Z"
end = "2022-10-04T10:30:00Z"

[truth]
fault_start = "10:10"
impact_start = "+30s"
root_cause = "music-svc"
sev = 2

[[effects]]
target = "music-svc*"
param = "error_rate"
keyframes = [["10:10", 0.005], ["10:11", 0.5]]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def refusal(path: Path, topology=None) -> str:
    with pytest.raises(ValueError) as exc:
        Scenario.from_file(path, topology)
    [line] = str(exc.value).splitlines()
    assert line.startswith(f"{path}: ")
    return line


@pytest.mark.parametrize(
    "old, new, says",
    [
        ("[[effects]]", "[[effect]]", "[[effect]] is unknown; did you mean [[effects]]?"),
        ("keyframes", "jiter_s = 1\nkeyframes", "#1: jiter_s is unknown; did you mean jitter_s?"),
        ("impact_start", "impact_strat", "[truth]: impact_strat is unknown; did you mean impact"),
        (
            "[truth]",
            "[delivery]\nlate = 0.1\n[truth]",
            "[delivery]: late is unknown; known: late_share, max",
        ),
        (
            "sev = 2",
            "sev = 2\n[maintenance]\ncomponents = []",
            "maintenance must be tables, [[maintenance]]",
        ),
        ('name = "tiny"', 'name = "tiny"\nresolution = 2', "resolution is unknown; did you"),
        ("error_rate", "eror_rate", "unknown parameter 'eror_rate'; did you mean 'error_rate'?"),
    ],
)
def test_an_unknown_key_is_named_with_the_closest_known(tmp_path, old, new, says):
    assert says in refusal(write(tmp_path, "typo", TINY.replace(old, new, 1)))


def test_a_target_or_parameter_the_topology_lacks_is_refused_at_load(tmp_path, topology):
    missing = write(tmp_path, "a", TINY.replace('"music-svc*"', '"music-sv/*"'))
    assert "[[effects]] #1: target 'music-sv/*' matches no entity" in refusal(missing, topology)
    wrong = write(tmp_path, "b", TINY.replace('"music-svc*"', '"redis/node-*"'))
    assert "'redis/node-*' is redis, without 'error_rate'" in refusal(wrong, topology)
    gap = write(tmp_path, "c", TINY + '[[gaps]]\ntarget = "nope"\nstart = "10:05"\n')
    assert "[[gaps]] #1: target 'nope' matches no entity" in refusal(gap, topology)
    assert Scenario.from_file(write(tmp_path, "d", TINY), topology).effects


def test_times_of_day_after_midnight_are_the_next_day(tmp_path):
    night = TINY.replace("10:00:00Z", "23:00:00Z").replace("2022-10-04T10:30:00Z", "01:00")
    night = night.replace('"10:1', '"00:3')
    sc = Scenario.from_file(write(tmp_path, "night", night))
    assert sc.end - sc.start == 7200
    assert sc.truth.fault_start - sc.start == 5400
    assert sc.effects[0].keyframes[0][0] == sc.truth.fault_start


@pytest.mark.parametrize(
    "old, new, says",
    [
        ('"10:10"', '"09:50"', "truth.fault_start '09:50' is 2022-10-05 09:50:00 UTC, outside"),
        ('"+30s"', '"+1h"', "truth.impact_start '+1h' is 2022-10-04 11:10:00 UTC, outside"),
        ('["10:11"', '["2022-10-04T11:00:00Z"', "[[effects]] #1 keyframe '2022-10-04T11:00"),
        ("10:30:00Z", "09:00:00Z", "end '2022-10-04T09:00:00Z' is 2022-10-04 09:00:00 UTC, not"),
    ],
)
def test_a_time_outside_the_scenario_is_refused(tmp_path, old, new, says):
    line = refusal(write(tmp_path, "late", TINY.replace(old, new, 1)))
    assert says in line
    if "outside the scenario" in line:
        assert line.endswith("(2022-10-04 10:00:00 UTC to 2022-10-04 10:30:00 UTC)")


def test_a_broken_file_is_skipped_and_told_without_breaking_the_others(tmp_path, topology):
    write(tmp_path, "tiny", TINY)
    untidy = write(tmp_path, "untidy", "name = [")
    typo = write(tmp_path, "typo", TINY.replace('"tiny"', '"typo"').replace("sev", "severity"))
    lost = write(tmp_path, "lost", TINY.replace('"tiny"', '"lost"').replace("music-svc*", "x"))
    library = load_scenarios(tmp_path, topology)
    assert {"tiny", "reference-2022-10-04"} <= set(library)
    assert set(library) == {p.stem for p in SCENARIO_DIR.glob("*.toml")} | {"tiny"}
    assert library.broken["untidy"].startswith(f"{untidy}: not valid TOML")
    assert library.broken["typo"].startswith(f"{typo}: [truth]: severity is unknown")
    assert library.broken["lost"].startswith(f"{lost}: [[effects]] #1: target 'x'")
    with pytest.raises(ValueError, match="severity"):
        library.find("typo")


def test_two_files_of_one_name_are_both_refused(tmp_path):
    first = write(tmp_path, "a", TINY)
    second = write(tmp_path, "b", TINY)
    library = load_scenarios(tmp_path)
    assert "tiny" not in library
    assert library.broken["tiny"] == f"{second}: name 'tiny' is also the name of {first}"
    shipped = write(tmp_path, "c", TINY.replace('"tiny"', '"reference-2022-10-04"'))
    library = load_scenarios(tmp_path)
    assert "reference-2022-10-04" not in library
    assert str(SCENARIO_DIR / "reference-2022-10-04.toml") in library.broken["reference-2022-10-04"]
    assert str(shipped) in library.broken["reference-2022-10-04"]


def test_a_folder_adds_to_the_shipped_library(tmp_path):
    write(tmp_path, "tiny", TINY)
    shipped = load_scenarios()
    assert set(load_scenarios(tmp_path)) == set(shipped) | {"tiny"}
    assert set(load_scenarios(SCENARIO_DIR)) == set(shipped)  # not twice
    with pytest.raises(ValueError, match="no is not a folder"):
        load_scenarios(tmp_path / "no")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no scenario file"):
        load_scenarios(tmp_path / "empty")


def test_a_file_is_found_by_its_path_as_well_as_its_name(tmp_path, topology):
    path = write(tmp_path, "elsewhere", TINY)
    library = load_scenarios()
    assert library.find(str(path), topology).name == "tiny"
    assert library.find("baseline-24h") is library["baseline-24h"]
    with pytest.raises(KeyError):
        library.find("tiny")


def test_every_shipped_file_loads_strictly(topology):
    library = load_scenarios(None, topology)
    assert not library.broken and len(library) == len(list(SCENARIO_DIR.glob("*.toml")))


def test_a_truth_may_accept_several_root_causes_and_a_sev_path(tmp_path, topology):
    either = TINY.replace('"music-svc"', '["music-svc", "postgres"]').replace(
        "sev = 2", "sev_path = [3, 1]"
    )
    truth = Scenario.from_file(write(tmp_path, "either", either), topology).truth
    assert truth.root_causes == ("music-svc", "postgres") and truth.root_cause == "music-svc"
    assert truth.sev_path == (3, 1) and truth.sev == 1
    both = either.replace("sev_path = [3, 1]", "sev_path = [3, 1]\nsev = 1")
    assert Scenario.from_file(write(tmp_path, "both", both)).truth.sev_path == (3, 1)
    plain = Scenario.from_file(write(tmp_path, "plain", TINY)).truth
    assert plain.root_causes == ("music-svc",) and plain.sev_path == (2,)
    assert plain.expects == ("page",)


@pytest.mark.parametrize(
    "old, new, says",
    [
        ("sev = 2", "sev = 5", "truth.sev must be a SEV from 1 to 4, not 5"),
        ("sev = 2", 'sev = "2"', "truth.sev must be a SEV from 1 to 4, not '2'"),
        ("sev = 2", "sev = 2\nsev_path = [3, 1]", "truth.sev 2 is not the last of truth.sev_path"),
        ("sev = 2", "sev_path = [3, 0]", "truth.sev_path must hold SEVs from 1 to 4, not [3, 0]"),
        ("sev = 2", "sev_path = [1, 3]", "truth.sev_path [1, 3] must escalate"),
        ("sev = 2", "sev_path = []", "truth.sev_path must be a SEV or a non-empty list"),
        ('"music-svc"\n', "[]\n", "truth.root_cause must be a component or a non-empty list"),
        ('"music-svc"\n', '["music-svc", 3]\n', "truth.root_cause must be a component or a"),
        (
            "sev = 2",
            'sev = 2\nexpect = ["page", "gapp"]',
            "truth.expect 'gapp' is unknown; did you",
        ),
        ("sev = 2", 'sev = 2\nexpect = "paeg"', "truth.expect 'paeg' is unknown; did you mean"),
        ("sev = 2", 'sev = 2\nexpect = ["none", "gap"]', "'none' cannot go with another"),
        ("sev = 2", 'sev = 2\nexpect = ["gap", "gap"]', "truth.expect ['gap', 'gap'] names one"),
        ("keyframes", "every_s = 60\nkeyframes", "#1: every_s needs for_s too"),
        ("keyframes", "for_s = 8\nkeyframes", "#1: for_s needs every_s too"),
        ("keyframes", "every_s = 60\nfor_s = 60\nkeyframes", "for_s 60 must be shorter than every"),
        ("keyframes", "every_s = 0\nfor_s = 8\nkeyframes", "#1: every_s must be a positive number"),
        ("keyframes", 'every_s = "2m"\nfor_s = 8\nkeyframes', "every_s must be a positive number"),
        ("keyframes", "every_s = 60\nfor_s = -1\nkeyframes", "for_s must be a positive number"),
        (
            'name = "tiny"',
            'name = "tiny"\nresolution_s = 0',
            "resolution_s must be a finite number above 0",
        ),
        ('name = "tiny"', 'name = "tiny"\nresolution_s = -1', "resolution_s must be a finite"),
        (
            'name = "tiny"',
            'name = "tiny"\nbatch_s = 0',
            "batch_s must be a finite number of at least 1, not 0",
        ),
        ('name = "tiny"', 'name = "tiny"\nblips_per_hour = -5', "blips_per_hour must be a finite"),
        ("0.5]]", "nan]]", "#1 keyframe must be a finite number of at least 0, not nan"),
        ("0.5]]", "-3]]", "#1 keyframe must be a finite number of at least 0, not -3"),
        ("0.5]]", "7.5]]", "#1 keyframe sets error_rate, a share, to 7.5: give it from 0 to 1"),
        ("0.5]]", "inf]]", "#1 keyframe must be a finite number of at least 0, not inf"),
        ("0.5]]", '"high"]]', "#1 keyframe must be a finite number of at least 0, not 'high'"),
    ],
)
def test_a_truth_a_period_or_a_value_that_cannot_be_meant_is_refused(tmp_path, old, new, says):
    assert says in refusal(write(tmp_path, "odd", TINY.replace(old, new, 1)))


def test_expectations_combine_and_a_single_one_stays_allowed(tmp_path):
    both = TINY.replace("sev = 2", 'sev = 2\nexpect = ["page", "gap"]')
    truth = Scenario.from_file(write(tmp_path, "both", both)).truth
    assert truth.expects == ("page", "gap") and truth.expect == "page"
    one = TINY.replace("sev = 2", 'sev = 2\nexpect = "warning"')
    assert Scenario.from_file(write(tmp_path, "one", one)).truth.expects == ("warning",)


def test_a_root_cause_must_be_a_component_of_the_topology(tmp_path, topology):
    typo = write(tmp_path, "a", TINY.replace('"music-svc"\n', '"redis-session"\n'))
    assert refusal(typo, topology).endswith(
        "truth.root_cause 'redis-session' is not a component of the topology;"
        " did you mean 'redis-sessions'?"
    )
    second = write(tmp_path, "b", TINY.replace('"music-svc"\n', '["music-svc", "postgre"]\n'))
    assert "truth.root_cause 'postgre' is not a component" in refusal(second, topology)
    pod = write(tmp_path, "c", TINY.replace('"music-svc"\n', '"music-svc/pod-01"\n'))
    assert "truth.root_cause 'music-svc/pod-01' is not a component" in refusal(pod, topology)
    assert Scenario.from_file(typo).truth.root_cause == "redis-session"  # no topology: no check


def test_a_pool_is_driven_only_where_the_topology_declares_one(tmp_path, topology):
    pool = TINY.replace('"music-svc*"', '"postgres"').replace("error_rate", "pool_used_ratio")
    assert Scenario.from_file(write(tmp_path, "a", pool), topology).effects
    lacking = write(tmp_path, "b", TINY.replace("error_rate", "pool_used_ratio"))
    assert "#1: 'music-svc' has no 'pool_used_ratio': only entities whose topology" in refusal(
        lacking, topology
    )


def test_a_factor_or_an_addition_may_go_past_a_share(tmp_path):
    text = TINY.replace("keyframes", 'mode = "scale"\nkeyframes').replace("0.5]]", "7.5]]")
    assert Scenario.from_file(write(tmp_path, "scaled", text)).effects[0].keyframes[-1][1] == 7.5
