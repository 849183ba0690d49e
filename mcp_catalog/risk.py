"""Real-time risk scoring of requests.

Every governed call is scored from features of the request and of the caller's recent
behaviour before any data is read; above the policy's ``refuse_at`` the call is refused, and
the score with its reasons goes into the audit record either way. Compliance officers list
calls at or above ``alert_at`` (``biofed audit alerts``, the ``audit_alerts`` tool).

The weights are deliberately simple and documented so a compliance officer can explain any
score: each reason adds a fixed amount, capped at 100.
"""

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass

WEIGHTS: dict[str, int] = {
    "direct_identifiers_requested": 30,
    "many_quasi_identifiers": 15,
    "large_page": 10,
    "break_glass": 50,
    "break_glass_invalid": 90,
    "burst_rate": 25,
    "extreme_burst_rate": 50,
    "repeated_denials": 30,
    "near_duplicate_population": 35,
    "purpose_mismatch": 60,
}
"""What each reason adds to a score (0-100 after capping)."""

BURST_WINDOW_SECONDS = 10.0
BURST_CALLS = 30
EXTREME_BURST_CALLS = 100
DENIAL_WINDOW_SECONDS = 300.0
DENIALS = 5
LARGE_PAGE_ROWS = 500
MANY_QUASI_IDENTIFIERS = 4


@dataclass(frozen=True)
class RiskFeatures:
    """What a request asks for, as far as risk is concerned."""

    direct_identifiers: int = 0
    quasi_identifiers: int = 0
    rows_requested: int = 0
    break_glass: bool = False
    break_glass_invalid: bool = False
    purpose_mismatch: bool = False
    near_duplicate_population: bool = False


@dataclass(frozen=True)
class RiskScore:
    """A score and the reasons that made it."""

    score: int
    reasons: tuple[str, ...]


class RiskTracker:
    """Per-principal call and denial history, for the behavioural features."""

    def __init__(self, *, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._denials: dict[str, deque[float]] = defaultdict(deque)

    def score(self, principal_key: str, features: RiskFeatures) -> RiskScore:
        """Record one call by ``principal_key`` and score it.

        Args:
            principal_key: the caller (``Principal.key``).
            features: what the call asks for.

        Returns:
            The score (0-100) and its reasons, in a fixed order.
        """
        now = self._clock()
        with self._lock:
            calls = self._calls[principal_key]
            calls.append(now)
            while calls and calls[0] < now - BURST_WINDOW_SECONDS:
                calls.popleft()
            denials = self._denials[principal_key]
            while denials and denials[0] < now - DENIAL_WINDOW_SECONDS:
                denials.popleft()
            recent_calls, recent_denials = len(calls), len(denials)
        reasons: list[str] = []
        if features.direct_identifiers:
            reasons.append("direct_identifiers_requested")
        if features.quasi_identifiers >= MANY_QUASI_IDENTIFIERS:
            reasons.append("many_quasi_identifiers")
        if features.rows_requested > LARGE_PAGE_ROWS:
            reasons.append("large_page")
        if features.break_glass:
            reasons.append("break_glass")
        if features.break_glass_invalid:
            reasons.append("break_glass_invalid")
        if recent_calls > EXTREME_BURST_CALLS:
            reasons.append("extreme_burst_rate")
        elif recent_calls > BURST_CALLS:
            reasons.append("burst_rate")
        if recent_denials >= DENIALS:
            reasons.append("repeated_denials")
        if features.near_duplicate_population:
            reasons.append("near_duplicate_population")
        if features.purpose_mismatch:
            reasons.append("purpose_mismatch")
        return RiskScore(min(100, sum(WEIGHTS[r] for r in reasons)), tuple(reasons))

    def denied(self, principal_key: str) -> None:
        """Remember that a call by ``principal_key`` was refused."""
        with self._lock:
            self._denials[principal_key].append(self._clock())
