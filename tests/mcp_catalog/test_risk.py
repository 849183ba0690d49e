"""Risk scores: fixed weights per reason, behaviour tracked per principal."""

from mcp_catalog.risk import (
    BURST_CALLS,
    DENIALS,
    EXTREME_BURST_CALLS,
    WEIGHTS,
    RiskFeatures,
    RiskTracker,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_ordinary_request_scores_zero():
    scored = RiskTracker().score(
        "http:alice", RiskFeatures(quasi_identifiers=2, rows_requested=100)
    )
    assert (scored.score, scored.reasons) == (0, ())


def test_each_reason_adds_its_documented_weight_and_the_score_is_capped_at_100():
    tracker = RiskTracker()
    scored = tracker.score(
        "http:alice",
        RiskFeatures(direct_identifiers=1, quasi_identifiers=5, rows_requested=1000),
    )
    assert scored.reasons == (
        "direct_identifiers_requested",
        "many_quasi_identifiers",
        "large_page",
    )
    assert scored.score == 30 + 15 + 10
    worst = tracker.score(
        "http:alice", RiskFeatures(break_glass_invalid=True, purpose_mismatch=True)
    )
    assert worst.score == 100 and "break_glass_invalid" in worst.reasons


def test_a_valid_break_glass_use_reaches_the_alert_level_but_not_refusal():
    scored = RiskTracker().score("http:clin", RiskFeatures(break_glass=True, rows_requested=200))
    assert scored.score == WEIGHTS["break_glass"] == 50


def test_bursts_are_counted_per_principal_within_the_window():
    clock = Clock()
    tracker = RiskTracker(clock=clock)
    for _ in range(BURST_CALLS):
        assert "burst_rate" not in tracker.score("http:alice", RiskFeatures()).reasons
    assert tracker.score("http:alice", RiskFeatures()).reasons == ("burst_rate",)
    assert tracker.score("http:bob", RiskFeatures()).reasons == ()
    for _ in range(EXTREME_BURST_CALLS):
        tracker.score("http:alice", RiskFeatures())
    assert tracker.score("http:alice", RiskFeatures()).reasons == ("extreme_burst_rate",)
    clock.now += 60
    assert tracker.score("http:alice", RiskFeatures()).reasons == ()


def test_repeated_denials_raise_the_score_until_they_age_out():
    clock = Clock()
    tracker = RiskTracker(clock=clock)
    for _ in range(DENIALS):
        tracker.denied("http:mallory")
    assert tracker.score("http:mallory", RiskFeatures()).reasons == ("repeated_denials",)
    clock.now += 301
    assert tracker.score("http:mallory", RiskFeatures()).reasons == ()
