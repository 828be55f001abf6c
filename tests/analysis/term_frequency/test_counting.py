"""The counting core on hand-written token streams with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.term_frequency.counting import Matcher, cumulate, pair_counts, term_counts, work_units
from analysis.term_frequency.terms import Term


def T(*tokens: int) -> Term:
    return Term(name=",".join(map(str, tokens)), tokens=tokens)


# Three rows of width 6 as stored; row 1 starts with row 0's last token (the packing overlap).
ROWS = np.array(
    [
        [5, 7, 5, 9, 5, 7],
        [7, 5, 5, 5, 9, 1],
        [9, 5, 7, 0, 5, 7],
    ],
    dtype=np.uint16,
)


def counts(terms: list[Term], rows: np.ndarray = ROWS) -> list[int]:
    """Occurrences per term; the positions path (`find`) and the counting path agree."""
    matcher = Matcher.build(terms)
    found = term_counts(matcher.find(rows)).tolist()
    assert matcher.count(rows).tolist() == found
    return found


def test_single_tokens_and_overlap_counted_in_both_rows() -> None:
    # token 7 ends row 0 and starts row 1 (the overlap): both copies count
    assert counts([T(5), T(7), T(9), T(3)]) == [8, 5, 3, 0]


def test_multi_token_terms_self_overlap_and_row_ends() -> None:
    # (5, 5) in "5 5 5" occurs twice (overlapping occurrences); (5, 7) ends rows 0 and 2;
    # (9, 5, 7) ends row 0 and starts row 2;
    # (7, 7) spans the row 0 / row 1 boundary only, so it never occurs inside a row
    assert counts([T(5, 5), T(5, 7), T(7, 7), T(9, 5, 7), T(5, 9, 1)]) == [2, 4, 0, 2, 1]


def test_terms_sharing_a_first_token_and_positions() -> None:
    found = Matcher.build([T(5), T(5, 7), T(5, 9)]).find(ROWS)
    assert found[1].tolist() == [0, 4, 13, 16]  # flat positions row * 6 + column
    assert found[2].tolist() == [2, 9]


def test_wide_token_ids() -> None:
    rows = np.array([[70000, 3, 70000, 70000], [3, 70001, 70000, 3]], dtype=np.int32)
    assert counts([T(70000), T(70000, 3), T(3), T(2**20)], rows) == [4, 2, 3, 0]


def test_matches_brute_force_on_random_rows() -> None:
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 6, size=(50, 17)).astype(np.uint16)
    terms = [T(1), T(2, 3), T(3, 3, 3), T(0, 1, 2, 3), T(5, 5)]

    def brute(tokens: tuple[int, ...]) -> int:
        return sum(
            tuple(r[j : j + len(tokens)]) == tokens
            for r in rows.tolist()
            for j in range(17 - len(tokens) + 1)
        )

    assert counts(terms, rows) == [brute(t.tokens) for t in terms]


def test_pairs_within_window() -> None:
    positions = Matcher.build([T(5), T(9), T(5, 9)]).find(ROWS)
    # window 2: 5-5 pairs (0,2),(2,4) in row 0; (7,8),(7,9),(8,9) in row 1; none in row 2
    # 5-9: row 0 (2,3),(4,3); row 1 (8,10),(9,10); row 2 (13,12) -> 5; 5-(5,9): row 0 at 2: 0,2,4
    # -> 3, row 1 at 9: 7,8,9 -> 3; 9-(5,9): (3,2),(10,9) -> 2
    assert pair_counts(positions, width=6, window=2).tolist() == [[5, 5, 6], [0, 0, 2], [0, 0, 0]]
    assert pair_counts(positions, width=6, window=1)[0, 0] == 2  # (7,8), (8,9)


def test_pairs_never_cross_rows() -> None:
    rows = np.array([[1, 0, 0, 2], [2, 0, 0, 1]], dtype=np.uint16)
    positions = Matcher.build([T(1), T(2)]).find(rows)
    assert pair_counts(positions, width=4, window=100).tolist() == [[0, 2], [0, 0]]
    with pytest.raises(ValueError, match="--window"):
        pair_counts(positions, width=4, window=0)


def test_work_units_follow_step_boundaries() -> None:
    # steps 0, 2, 3 at B = 4 -> bins: [0,0) (step 0), [0,8) step 2, [8,12) step 3
    assert work_units([0, 2, 3], 4, chunk_rows=3) == [
        (0, 3, 1),
        (3, 6, 1),
        (6, 8, 1),
        (8, 11, 2),
        (11, 12, 2),
    ]
    assert cumulate(np.array([[0], [5], [2]])).ravel().tolist() == [0, 5, 7]


def test_no_terms_refused() -> None:
    with pytest.raises(ValueError, match="nothing to count"):
        Matcher.build([])
