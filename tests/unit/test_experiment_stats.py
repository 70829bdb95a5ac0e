"""Variant assignment and the results statistics, checked against known values."""
from __future__ import annotations

import pytest
from scipy import stats

from app.core.experiments import assign, bucket, two_proportion_test, wilson_interval

USERS = [f"user-{i}" for i in range(10_000)]


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.1, 0.9), (0.2, 0.3, 0.5)])
def test_assignment_is_within_one_point_of_the_shares_over_10000_users(shares):
    """A hash split is binomial: at 50/50 and 10,000 users one point is ~2 standard deviations, so about 95%
    of experiments land within it (measured: 50 of 50 below; "e" * 32 is one that does not, at 51.03%)."""
    within, worst_z = 0, 0.0
    for number in range(50):
        experiment = {"experiment_id": f"exp-{number}",
                      "variants": [{"name": str(i), "share": share, "params": {}} for i, share in enumerate(shares)]}
        seen = [assign(experiment, user).variant for user in USERS]
        errors = [(seen.count(str(i)) / len(USERS) - share, share) for i, share in enumerate(shares)]
        within += all(abs(error) <= 0.01 for error, _ in errors)
        worst_z = max(worst_z, *(abs(error) / (share * (1 - share) / len(USERS)) ** 0.5 for error, share in errors))
    assert within >= 45
    assert worst_z < 4  # no bias beyond sampling noise


def test_assignment_is_stable_and_independent_between_experiments():
    variants = [{"name": "a", "share": 0.5, "params": {}}, {"name": "b", "share": 0.5, "params": {}}]
    first, second = ({"experiment_id": name, "variants": variants} for name in ("exp-1", "exp-2"))
    assert [assign(first, u).variant for u in USERS[:500]] == [assign(first, u).variant for u in USERS[:500]]
    agreement = sum(assign(first, u).variant == assign(second, u).variant for u in USERS) / len(USERS)
    assert 0.47 < agreement < 0.53  # another experiment splits the users afresh
    assert bucket("exp-1", "user-1") == pytest.approx(bucket("exp-1", "user-1"))
    assert stats.kstest([bucket("exp-1", u) for u in USERS], "uniform").pvalue > 0.001


@pytest.mark.parametrize("successes, trials", [(30, 100), (1, 7), (999, 1000), (0, 50)])
def test_wilson_interval_matches_scipy(successes, trials):
    expected = stats.binomtest(successes, trials).proportion_ci(method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx([expected.low, expected.high], abs=1e-12)


def test_wilson_interval_edges():
    assert wilson_interval(0, 50)[0] == pytest.approx(0, abs=1e-12) and 0 < wilson_interval(0, 50)[1] < 0.08
    assert wilson_interval(0, 0) == [0.0, 1.0]


def test_two_proportion_test_matches_the_chi_square_test():
    result = two_proportion_test(100, 1000, 130, 1000)
    table = [[100, 900], [130, 870]]
    expected = stats.chi2_contingency(table, correction=False).pvalue  # the pooled z-test squared
    assert result["p_value"] == pytest.approx(expected, rel=1e-9)
    assert result["difference"] == pytest.approx(0.03)
    low, high = result["difference_ci"]
    assert low < 0.03 < high and low > 0  # significant at 5%: the interval excludes 0
    assert two_proportion_test(5, 0, 1, 10)["p_value"] is None
