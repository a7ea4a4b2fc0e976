"""The one shape of an item a task passes on to the next: a JSON Lines manifest line.

    {"image": <path>, "label": <class label>, "boxes": [{"bbox": [x, y, w, h], "label": ...}]}

``image`` is absolute (an input item), or relative to the folder of the file that
holds the row (a file the task wrote, under its output folder); ``label`` and
``boxes`` appear when the item has them (``boxes`` may be empty: an augmented copy
whose boxes all left the image). A row may carry more keys for people to read
(``item``, a selection's reason); a reader of manifests ignores them. An operator that passes items on
names its file in ``Operator.passes_on`` and builds each row with
:func:`pass_on_row`, so no other code needs to know its file name or row layout.
"""

from __future__ import annotations

import os

from operators.pipeline import BOXES, LABEL

IMAGE = "image"


def pass_on_row(image: str, label: str | None = None, boxes: list | None = None, **extra: object) -> dict:
    """A row passing on the item at ``image`` with its annotations, plus ``extra`` keys for people."""
    row: dict = {**extra, IMAGE: image}
    if label is not None:
        row[LABEL] = label
    if boxes is not None:
        row[BOXES] = boxes
    return row


def input_image(item: str, root: str | None) -> str:
    """An input item's path as a pass-on row names it: absolute, under the folder the items are read from.

    Without that folder (an operator run directly, without a root) it is the item's own path.
    """
    return item if root is None else os.path.join(root, item)
