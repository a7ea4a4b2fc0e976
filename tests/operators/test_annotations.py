"""Target-box annotations with hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest

from operators import annotations as A

WIDTH, HEIGHT = 100, 50


def _box(bbox: object, label: object = "cat") -> dict:
    return {A.BBOX: bbox, A.LABEL: label}


def _codes(findings: list[dict]) -> list[tuple[int, str]]:
    return [(f["index"], f["code"]) for f in findings]


# parse_boxes

def test_parse_boxes_well_formed() -> None:
    boxes, labels, problems = A.parse_boxes([_box([0, 0, 50, 25]), _box((1.5, 2, 3, 4), "dog") | {"score": 0.9}])
    assert boxes.dtype == np.float64 and boxes.tolist() == [[0, 0, 50, 25], [1.5, 2, 3, 4]]
    assert labels == ["cat", "dog"] and problems == []


@pytest.mark.parametrize(("entry", "fragment"), [
    ("cat", "must be an object"),
    (_box("0,0,5,5"), "list of 4 numbers"),
    (_box([1, 2, 3]), "list of 4 numbers"),
    (_box([1, 2, 3, 4, 5]), "list of 4 numbers"),
    (_box(["1", 2, 3, 4]), "only numbers"),
    (_box([True, 2, 3, 4]), "only numbers"),
    (_box([1, 2, float("nan"), 4]), "finite"),
    (_box([1, 2, float("inf"), 4]), "finite"),
    ({A.LABEL: "cat"}, "list of 4 numbers"),
    ({A.BBOX: [1, 2, 3, 4]}, "missing 'label'"),
    (_box([1, 2, 3, 4], 7), "must be a string"),
    (_box([1, 2, 3, 4], None), "must be a string"),
    (_box([1, 2, 3, 4], "  "), "is empty"),
], ids=["string-entry", "bbox-string", "three-numbers", "five-numbers", "numeric-string", "bool", "nan",
        "inf", "missing-bbox", "missing-label", "label-number", "label-none", "label-blank"])
def test_parse_boxes_reports_and_skips_malformed_entries(entry: object, fragment: str) -> None:
    boxes, labels, problems = A.parse_boxes([_box([0, 0, 1, 1], "ok"), entry, _box([2, 2, 1, 1], "ok2")])
    assert boxes.tolist() == [[0, 0, 1, 1], [2, 2, 1, 1]] and labels == ["ok", "ok2"]
    assert len(problems) == 1 and problems[0].startswith("box 1:") and fragment in problems[0]


def test_parse_boxes_reports_every_problem_of_an_entry() -> None:
    _, _, problems = A.parse_boxes([{A.BBOX: [1, 2, 3]}])
    assert len(problems) == 1 and "list of 4 numbers" in problems[0] and "missing 'label'" in problems[0]


@pytest.mark.parametrize(("raw", "n_problems"),
                         [(None, 0), ([], 0), ((), 0), ("boxes", 1), ({A.BBOX: [0, 0, 1, 1]}, 1)],
                         ids=["none", "empty-list", "empty-tuple", "string", "single-object"])
def test_parse_boxes_empty_or_not_a_list(raw: object, n_problems: int) -> None:
    boxes, labels, problems = A.parse_boxes(raw)
    assert boxes.shape == (0, 4) and labels == [] and len(problems) == n_problems


# box_problems

@pytest.mark.parametrize(("bbox", "expected"), [
    ([0, 0, 100, 50], []),
    ([10, 10, 20, 20], []),
    ([90, 40, 20, 20], [A.PARTLY_OUTSIDE_IMAGE]),
    ([-5, 10, 20, 20], [A.PARTLY_OUTSIDE_IMAGE]),
    ([10, -1, 5, 5], [A.PARTLY_OUTSIDE_IMAGE]),
    ([100, 0, 5, 5], [A.OUTSIDE_IMAGE]),
    ([-20, 0, 20, 5], [A.OUTSIDE_IMAGE]),
    ([10, 60, 5, 5], [A.OUTSIDE_IMAGE]),
    ([-500, -500, 10, 10], [A.OUTSIDE_IMAGE]),
    ([10, 10, 0, 5], [A.NON_POSITIVE_SIZE]),
    ([10, 10, 5, -3], [A.NON_POSITIVE_SIZE]),
    ([200, 200, -1, -1], [A.NON_POSITIVE_SIZE]),
], ids=["whole-image", "inside", "partly-bottom-right", "partly-left", "partly-top", "touching-right-edge",
        "touching-left-edge", "below", "far-away", "zero-width", "negative-height", "negative-and-outside"])
def test_box_problems_geometry(bbox: list[float], expected: list[str]) -> None:
    findings = A.box_problems(np.array([bbox], dtype=float), ["cat"], WIDTH, HEIGHT, None)
    assert [f["code"] for f in findings] == expected
    assert all(f["index"] == 0 and f["message"] for f in findings)


def test_box_problems_labels_and_ordering() -> None:
    boxes = np.array([[0, 0, 10, 10], [90, 40, 20, 20], [0, 0, 0, 0], [5, 5, 5, 5]], dtype=float)
    findings = A.box_problems(boxes, ["cat", "dog", "cat", "bird"], WIDTH, HEIGHT, {"cat", "dog"})
    assert _codes(findings) == [(1, A.PARTLY_OUTSIDE_IMAGE), (2, A.NON_POSITIVE_SIZE), (3, A.LABEL_NOT_ALLOWED)]
    assert findings[2]["message"] == "label 'bird' is not one of the allowed labels: cat, dog"
    # 10 x 10 of the 20 x 20 box is inside: three quarters lie outside.
    assert "75%" in findings[0]["message"]


def test_box_problems_label_and_geometry_on_one_box() -> None:
    findings = A.box_problems(np.array([[100, 0, 5, 5]], dtype=float), ["dog"], WIDTH, HEIGHT, {"cat"})
    assert _codes(findings) == [(0, A.LABEL_NOT_ALLOWED), (0, A.OUTSIDE_IMAGE)]


def test_box_problems_no_allowed_set_means_any_label() -> None:
    assert A.box_problems(np.array([[1, 1, 2, 2]], dtype=float), ["anything"], WIDTH, HEIGHT, None) == []
    assert _codes(A.box_problems(np.array([[1, 1, 2, 2]], dtype=float), ["x"], WIDTH, HEIGHT, set())) == [
        (0, A.LABEL_NOT_ALLOWED)]


def test_box_problems_no_boxes() -> None:
    assert A.box_problems(np.empty((0, 4)), [], WIDTH, HEIGHT, {"cat"}) == []


@pytest.mark.parametrize(("boxes", "labels", "size", "match"), [
    (np.zeros((2, 4)), ["a"], (WIDTH, HEIGHT), "2 boxes but 1 labels"),
    (np.zeros((1, 3)), ["a"], (WIDTH, HEIGHT), "shape"),
    (np.array([[0, 0, np.nan, 1]]), ["a"], (WIDTH, HEIGHT), "NaN"),
    (np.zeros((1, 4)), ["a"], (0, HEIGHT), "positive"),
], ids=["label-count", "three-columns", "nan", "zero-width-image"])
def test_box_problems_rejects_bad_input(boxes: np.ndarray, labels: list[str], size: tuple[int, int],
                                        match: str) -> None:
    with pytest.raises(ValueError, match=match):
        A.box_problems(boxes, labels, *size, None)


# box_statistics

def test_box_statistics_on_a_tiny_known_set() -> None:
    stats = A.box_statistics(
        [np.array([[0, 0, 50, 25], [90, 40, 20, 20]], dtype=float), np.empty((0, 4)),
         np.array([[10, 10, 10, 40], [0, 0, 0, 5], [300, 0, 10, 10]], dtype=float)],
        [["cat", "dog"], [], ["dog", "cat", "dog"]],
        [WIDTH, 30, 200],
        [HEIGHT, 30, 100],
    )
    assert stats[A.IMAGES] == 3 and stats[A.IMAGES_WITH_BOXES] == 2 and stats[A.TOTAL_BOXES] == 5
    assert stats[A.BOXES_PER_IMAGE].tolist() == [2, 0, 3]
    assert stats[A.BOXES_PER_LABEL] == {"dog": 3, "cat": 2}
    assert list(stats[A.BOXES_PER_LABEL]) == ["dog", "cat"]
    assert stats[A.IMAGE_INDEX].tolist() == [0, 0, 2, 2, 2]
    assert stats[A.LABELS] == ["cat", "dog", "dog", "cat", "dog"]
    # 50*25 / (100*50); 20*20 / (100*50), unclipped; 10*40 / (200*100); degenerate; 10*10 / (200*100).
    assert stats[A.AREA_RATIO] == pytest.approx([0.25, 0.08, 0.02, np.nan, 0.005], nan_ok=True)
    assert stats[A.ASPECT_RATIO] == pytest.approx([2.0, 1.0, 0.25, np.nan, 1.0], nan_ok=True)
    assert stats[A.PARTLY_OUTSIDE_IMAGE].tolist() == [False, True, False, False, False]
    assert stats[A.OUTSIDE_IMAGE].tolist() == [False, False, False, False, True]
    assert (stats[A.BOXES_PARTLY_OUTSIDE_IMAGE], stats[A.BOXES_OUTSIDE_IMAGE], stats[A.BOXES_NON_POSITIVE_SIZE]) == (
        1, 1, 1)


def test_box_statistics_agrees_with_box_problems() -> None:
    boxes = np.array([[0, 0, 50, 25], [90, 40, 20, 20], [100, 0, 5, 5], [1, 1, -1, 1]], dtype=float)
    labels = ["a", "b", "c", "d"]
    stats = A.box_statistics([boxes], [labels], [WIDTH], [HEIGHT])
    codes = _codes(A.box_problems(boxes, labels, WIDTH, HEIGHT, None))
    for code in (A.PARTLY_OUTSIDE_IMAGE, A.OUTSIDE_IMAGE):
        assert [i for i, c in codes if c == code] == np.flatnonzero(stats[code]).tolist()


def test_box_statistics_of_nothing() -> None:
    stats = A.box_statistics([], [], [], [])
    assert (stats[A.IMAGES], stats[A.TOTAL_BOXES], stats[A.IMAGES_WITH_BOXES]) == (0, 0, 0)
    assert stats[A.AREA_RATIO].size == 0 and stats[A.BOXES_PER_LABEL] == {}


@pytest.mark.parametrize(("boxes", "labels", "widths", "heights", "match"), [
    ([np.zeros((1, 4))], [["a"]], [10, 20], [10, 20], "must match"),
    ([np.zeros((2, 4))], [["a"]], [10], [10], "image 0: got 2 boxes but 1 labels"),
    ([np.zeros((1, 4))], [["a"]], [10], [-1], "positive"),
], ids=["image-count", "label-count", "negative-height"])
def test_box_statistics_rejects_misaligned_input(boxes: list, labels: list, widths: list, heights: list,
                                                 match: str) -> None:
    with pytest.raises(ValueError, match=match):
        A.box_statistics(boxes, labels, widths, heights)
