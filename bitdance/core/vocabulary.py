"""The closed vocabularies of the built-in domains: colours, shapes, sizes, positions, relations, counts and
Fashion-MNIST classes.

Both sides import this module: ``bitdance.data`` (renderers and the training captioner) and
``bitdance.evaluation`` (prompt validation and scorers). Keeping it here lets the evaluation code check a
prompt's expectation without importing the captioner that wrote the training captions.
"""

from __future__ import annotations

# Named colours shared by Shapes, tinted Fashion-MNIST and the adherence scorer. Values are chosen to be far
# apart in RGB (smallest pairwise distance ~100, orange vs yellow) so a nearest-colour rule is reliable.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 130, 0),
    "yellow": (255, 235, 0),
    "green": (30, 170, 50),
    "blue": (30, 90, 230),
    "purple": (140, 50, 200),
    "pink": (255, 130, 200),
    "white": (255, 255, 255),
}

NUMBER_WORDS: dict[int, str] = {
    0: "zero",
    1: "one",
    2: "two",
    3: "three",
    4: "four",
    5: "five",
    6: "six",
    7: "seven",
    8: "eight",
    9: "nine",
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right", "center")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
COUNTS: tuple[int, ...] = (1, 2, 3, 4)

# Where each absolute position sits, as fractions of the canvas side (origin top left, y down).
POSITION_ANCHORS: dict[str, tuple[float, float]] = {
    "top left": (0.25, 0.25),
    "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75),
    "center": (0.5, 0.5),
}

# Fashion-MNIST label order (label i is FASHION_CLASSES[i]).
FASHION_CLASSES: tuple[str, ...] = (
    "t-shirt",
    "trousers",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
