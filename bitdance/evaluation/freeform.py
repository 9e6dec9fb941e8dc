"""The free-form prompt suite: prompts written the way people type, with a fixed dev/test split.

    bitdance build-freeform build      # writes bitdance/assets/eval/prompts_freeform.jsonl

Written by hand for this file (synonyms and hypernyms, carrier phrases and filler, other word orders,
plural/singular, casing, light typos, longer sentences, and the compositional categories the training
templates lack: two objects with no relation, colours swapped between two objects, counts as words or
digits, relations in many phrasings). It imports nothing from ``bitdance.data``: the captioner that wrote
the training captions had no hand in it, and ``tests/test_eval_freeform.py`` checks that no prompt is a
caption it can produce.

Split: within each category, prompts (or swapped-colour pairs, which stay together) are ordered by a hash of
their text and the first 40 % go to ``dev``, the rest to ``test``. Only ``dev`` may steer a training or
shipping decision; ``test`` is reported and never used to choose anything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

DEV_FRACTION = 0.4
SPLIT_SALT = "bitdance/freeform/v1"
MAX_EMOJI = 80

EMOJI: list[tuple[str, str]] = [  # (prompt, lower-cased Unicode name)
    ("a rocket ship blasting off", "rocket"),
    ("an eggplant", "aubergine"),
    ("Eggplant emoji pls", "aubergine"),
    ("a slice of pepperoni pizza", "slice of pizza"),
    ("pizza slice", "slice of pizza"),
    ("santa claus", "father christmas"),
    ("a red heart", "heavy black heart"),
    ("a love heart, red", "heavy black heart"),
    ("a cheeseburger", "hamburger"),
    ("a burger with fries on the side? no, just the burger", "hamburger"),
    ("a shiny red apple", "red apple"),
    ("a ripe banana", "banana"),
    ("a bunch of grapes", "grapes"),
    ("a juicy slice of watermelon", "watermelon"),
    ("I'd like a lemon", "lemon"),
    ("a pineapple, please", "pineapple"),
    ("a donut with sprinkles", "doughnut"),
    ("a birthday cake with candles", "birthday cake"),
    ("a chocolate chip cookie", "cookie"),
    ("a hotdog", "hot dog"),
    ("a bowl of popcorn", "popcorn"),
    ("a cup of hot coffee", "hot beverage"),
    ("a mug of beer", "beer mug"),
    ("a glass of red wine", "wine glass"),
    ("a sunflower in bloom", "sunflower"),
    ("a single red rose", "rose"),
    ("a tulip flower", "tulip"),
    ("a cactus plant", "cactus"),
    ("a palm tree on its own", "palm tree"),
    ("a decorated xmas tree", "christmas tree"),
    ("a leaf from a maple tree", "maple leaf"),
    ("a lucky four-leaf clover", "four leaf clover"),
    ("a toadstool", "mushroom"),
    ("some cherries", "cherries"),
    ("a strawbery", "strawberry"),
    ("an acoustic guitar", "guitar"),
    ("a violin with its bow", "violin"),
    ("a shiny trumpet", "trumpet"),
    ("a sax", "saxophone"),
    ("a football (soccer)", "soccer ball"),
    ("a gold trophy cup", "trophy"),
    ("a passenger plane", "airplane"),
    ("a bike", "bicycle"),
    ("a car", "automobile"),
    ("a fire truck", "fire engine"),
    ("an ambulance van", "ambulance"),
    ("a steam train", "steam locomotive"),
    ("a sail boat", "sailboat"),
    ("a ship's anchor", "anchor"),
    ("a snowman with a carrot nose", "snowman without snow"),
    ("a snow flake", "snowflake"),
    ("a rainbow in the sky", "rainbow"),
    ("a lightning bolt", "high voltage sign"),
    ("flames, fire", "fire"),
    ("a water drop", "droplet"),
    ("a crescent moon at night", "crescent moon"),
    ("an erupting volcano", "volcano"),
    ("an old door key", "key"),
    ("a padlock", "lock"),
    ("a hammer tool", "hammer"),
    ("a stack of books", "books"),
    ("a smartphone", "mobile phone"),
    ("an old alarm clock", "alarm clock"),
    ("a sparkling diamond", "gem stone"),
    ("a king's crown", "crown"),
    ("a red party balloon", "balloon"),
    ("a gift box with a ribbon", "wrapped present"),
    ("a carved pumpkin for halloween", "jack-o-lantern"),
    ("a spooky ghost", "ghost"),
    ("a robot", "robot face"),
    ("a human skull", "skull"),
    ("a thumbs up", "thumbs up sign"),
    ("two hands clapping", "clapping hands sign"),
    ("a laughing face crying tears of joy", "face with tears of joy"),
    ("a cool face wearing sunglasses", "smiling face with sunglasses"),
    ("a bag of money", "money bag"),
    ("a letter envelope", "envelope"),
    ("a golden bell", "bell"),
    ("a music note", "musical note"),
    ("a pair of headphones", "headphone"),
    ("a game controller", "video game"),
    ("a dice", "game die"),
    ("a camping tent", "tent"),
    ("a ferris wheel at the fair", "ferris wheel"),
    ("a helicopter in flight", "helicopter"),
    ("a bomb with a lit fuse", "bomb"),
    ("a lab microscope", "microscope"),
    ("a lit candle", "candle"),
    ("a seashell", "spiral shell"),
    ("a colourful tropical fish", "tropical fish"),
    ("a great white shark", "shark"),
    ("a fluffy little chick", "baby chick"),
    ("a bald eagle", "eagle"),
    ("a duck swimming", "duck"),
    ("a fox", "fox face"),
    ("a lion's head", "lion face"),
    ("a cute panda", "panda face"),
    ("a giraffe", "giraffe face"),
    ("a green dragon", "dragon"),
    ("a dinosaur with a long neck", "sauropod"),
    ("a creepy spider", "spider"),
    ("a bouquet of flowers", "bouquet"),
    ("cherry blossoms", "cherry blossom"),
    ("an orange carrot", "carrot"),
    ("half an avocado", "avocado"),
    ("a chili pepper", "hot pepper"),
    ("a head of broccoli", "broccoli"),
    ("a buttery croissant", "croissant"),
    ("a wedge of cheese", "cheese wedge"),
    ("a stack of pancakes", "pancakes"),
    ("a plate of sushi", "sushi"),
    ("spaghetti", "spaghetti"),
    ("a swirly lollipop", "lollipop"),
    ("a honey jar", "honey pot"),
    ("a globe", "globe with meridians"),
    ("a navigation compass", "compass"),
    ("a snowy mountain", "snow capped mountain"),
    ("the statue of liberty", "statue of liberty"),
    ("a pair of glasses", "eyeglasses"),
    ("a tie", "necktie"),
    ("a pair of jeans, emoji", "jeans"),
    ("a high heel", "high-heeled shoe"),
    ("a graduation hat", "graduation cap"),
    ("a tube of lipstick", "lipstick"),
    ("a heart broken in two", "broken heart"),
    ("a heart in blue", "blue heart"),
    ("heart, green", "green heart"),
    ("a ladybug", "lady beetle"),
    ("a sea turtle", "turtle"),
    ("a crocodile, snapping", "crocodile"),
    ("a pufferfish", "blowfish"),
    ("a teddy", "teddy bear"),
    ("a kite flying", "kite"),
    ("fireworks going off", "fireworks"),
    ("a horseshoe magnet", "magnet"),
    ("a dna helix", "dna double helix"),
    ("a light bulb idea? no: a battery", "battery"),
    ("a wastebasket / trash can", "wastebasket"),
    ("a loo", "toilet"),
    ("a bed to sleep in", "bed"),
    ("a wooden chair", "chair"),
    ("a wall calendar", "calendar"),
    ("a paper clip", "paperclip"),
    ("a push pin", "pushpin"),
    ("a book lying open", "open book"),
    ("today's newspaper", "newspaper"),
    ("a gear wheel", "gear"),
    ("a glass test-tube", "test tube"),
    ("a bee", "honeybee"),
    ("an octopus with eight arms", "octopus"),
    ("a whale spouting water", "spouting whale"),
    ("a penguin standing", "penguin"),
    ("a frog", "frog face"),
    ("an elephant with big ears", "elephant"),
    ("a slithering snake", "snake"),
    ("a unicorn", "unicorn face"),
    ("an owl at night", "owl"),
    ("a bunny", "rabbit face"),
    ("a tiger's face", "tiger face"),
    ("a pink pig face", "pig face"),
    ("a cheeky monkey face", "monkey face"),
    ("a cuddly koala bear", "koala"),
    ("a rooster crowing", "rooster"),
    ("a colourful butterfly", "butterfly"),
    ("a red crab", "crab"),
]
FASHION: list[tuple[str, str, str | None]] = [  # (prompt, class, colour or None)
    ("a plain t shirt", "t-shirt", None),
    ("a short-sleeved tee shirt", "t-shirt", None),
    ("T-SHIRT", "t-shirt", None),
    ("a crew neck top with short sleeves", "t-shirt", None),
    ("a pair of jeans", "trousers", None),
    ("some slacks", "trousers", None),
    ("long trowsers", "trousers", None),
    ("a hoodie", "pullover", None),
    ("a knitted sweater, long sleeves", "pullover", None),
    ("a warm woolly jumper for winter", "pullover", None),
    ("a summer dress", "dress", None),
    ("an evening gown", "dress", None),
    ("a frock", "dress", None),
    ("a winter coat", "coat", None),
    ("a parka", "coat", None),
    ("a rain jacket with a zip", "coat", None),
    ("a pair of sandals", "sandal", None),
    ("a flip flop", "sandal", None),
    ("strappy summer sandals", "sandal", None),
    ("a button-up shirt", "shirt", None),
    ("a blouse", "shirt", None),
    ("a collared shirt with long sleeves", "shirt", None),
    ("running shoes", "sneaker", None),
    ("a pair of sneakers", "sneaker", None),
    ("a sports shoe", "sneaker", None),
    ("Sneakers!", "sneaker", None),
    ("a ladies' purse", "bag", None),
    ("a tote bag", "bag", None),
    ("a leather handbag with a strap", "bag", None),
    ("a pair of boots", "ankle boot", None),
    ("a chelsea boot", "ankle boot", None),
    ("short boots that stop at the ankle", "ankle boot", None),
    ("a photo of some footwear: a boot", "ankle boot", None),
    ("a product photo of a dress", "dress", None),
    ("please draw a coat", "coat", None),
    ("I'd like a picture of a bag", "bag", None),
    # colour
    ("a t-shirt in red", "t-shirt", "red"),
    ("a scarlet tee", "t-shirt", "red"),
    ("a Blue T-Shirt, size M", "t-shirt", "blue"),
    ("a yellow tshirt", "t-shirt", "yellow"),
    ("blue jeans", "trousers", "blue"),
    ("green pants please", "trousers", "green"),
    ("a pair of pink trousers on black", "trousers", "pink"),
    ("white trousers", "trousers", "white"),
    ("a purple hoodie", "pullover", "purple"),
    ("an orange sweater, knitted", "pullover", "orange"),
    ("a jumper coloured green", "pullover", "green"),
    ("a red colored pullover", "pullover", "red"),
    ("a pink summer dress", "dress", "pink"),
    ("a dress that is white", "dress", "white"),
    ("a violet gown", "dress", "purple"),
    ("a yellow dres", "dress", "yellow"),
    ("a blue winter coat", "coat", "blue"),
    ("an orange parka", "coat", "orange"),
    ("a crimson jacket", "coat", "red"),
    ("a coat, purple", "coat", "purple"),
    ("yellow sandals", "sandal", "yellow"),
    ("a green flip flop", "sandal", "green"),
    ("sandal in blue", "sandal", "blue"),
    ("a white sandal for the beach", "sandal", "white"),
    ("a pink blouse", "shirt", "pink"),
    ("a red button-down shirt", "shirt", "red"),
    ("an orange shirt with a collar", "shirt", "orange"),
    ("a shirt colored purple", "shirt", "purple"),
    ("white sneakers", "sneaker", "white"),
    ("a pair of green running shoes", "sneaker", "green"),
    ("an orange sneeker", "sneaker", "orange"),
    ("I want a pink sports shoe", "sneaker", "pink"),
    ("a red purse", "bag", "red"),
    ("a blue tote bag", "bag", "blue"),
    ("a yellow handbag please", "bag", "yellow"),
    ("a bag in purple", "bag", "purple"),
    ("brown? no - orange ankle boots", "ankle boot", "orange"),
    ("a pair of white boots", "ankle boot", "white"),
    ("a green chelsea boot", "ankle boot", "green"),
    ("a blue ankle-boot", "ankle boot", "blue"),
    ("please show me a red ankle boot on a dark background", "ankle boot", "red"),
    ("a photograph of a yellow coat", "coat", "yellow"),
    ("could you draw a pink bag", "bag", "pink"),
    ("A GREEN DRESS PLS", "dress", "green"),
]
# (prompt, position, size, object)
ABSOLUTE: list[tuple[str, str, str | None, str]] = [
    ("a big red circle in the top-left corner", "top left", "large", "red circle"),
    ("put a small blue square at the very bottom right", "bottom right", "small", "blue square"),
    ("top right: a green triangle", "top right", None, "green triangle"),
    ("a pink circle, centered", "center", None, "pink circle"),
    ("in the middle of the picture, a large white square", "center", "large", "white square"),
    ("a tiny yellow triangle up in the left corner at the top", "top left", "small", "yellow triangle"),
    ("draw an orange square in the lower right corner please", "bottom right", None, "orange square"),
    ("a purple circle sitting bottom left", "bottom left", None, "purple circle"),
    ("Blue Triangle, Top Right Corner", "top right", None, "blue triangle"),
    ("a huge green circle right in the centre of the image", "center", "large", "green circle"),
    ("the upper-right corner has a small red square", "top right", "small", "red square"),
    ("i want a white triangle at the bottom left of the frame", "bottom left", None, "white triangle"),
    ("a little pink square, top-left", "top left", "small", "pink square"),
    ("a large yellow circle positioned at the lower left", "bottom left", "large", "yellow circle"),
    ("bottom right corner - a purple triangle", "bottom right", None, "purple triangle"),
    ("a red triangel in the middle", "center", None, "red triangle"),
    ("place one blue circle in the upper left area", "top left", None, "blue circle"),
    ("an orange circle near the top right", "top right", None, "orange circle"),
    ("a green square in the bottom-left corner of a black image", "bottom left", None, "green square"),
    ("a small white circle dead center", "center", "small", "white circle"),
    ("could you draw a big purple square in the top right", "top right", "large", "purple square"),
    ("a yellow square, lower right side", "bottom right", None, "yellow square"),
    ("at the top left there should be a pink triangle", "top left", None, "pink triangle"),
    ("a large blue square centred", "center", "large", "blue square"),
    ("a small orange triangle down in the bottom right", "bottom right", "small", "orange triangle"),
    ("a red circle at the lower-left", "bottom left", None, "red circle"),
    ("a teeny green triangle top right", "top right", "small", "green triangle"),
    ("a white square at the top left of the canvas", "top left", None, "white square"),
    ("one pink circle in the bottom right corner", "bottom right", None, "pink circle"),
    ("a purple square in the very middle", "center", None, "purple square"),
    ("an enormous yellow triangle, middle of the frame", "center", "large", "yellow triangle"),
    ("a big blue circle over at the bottom left", "bottom left", "large", "blue circle"),
]
SIZE: list[tuple[str, str, str]] = [  # (prompt, size, object)
    ("a tiny red square", "small", "red square"),
    ("a huge blue circle", "large", "blue circle"),
    ("a small green triangle, nothing else", "small", "green triangle"),
    ("a large pink square", "large", "pink square"),
    ("a big yellow circle", "large", "yellow circle"),
    ("a little purple triangle", "small", "purple triangle"),
    ("a giant orange square", "large", "orange square"),
    ("a mini white circle", "small", "white circle"),
    ("draw a small blue square", "small", "blue square"),
    ("one large red triangle please", "large", "red triangle"),
    ("a very small pink circle", "small", "pink circle"),
    ("a massive green square", "large", "green square"),
    ("an itty bitty orange triangle", "small", "orange triangle"),
    ("a BIG white triangle", "large", "white triangle"),
]
SHAPE_SINGLE: list[tuple[str, str]] = [  # (prompt, object)
    ("a green triangle", "green triangle"),
    ("just a red circle on black", "red circle"),
    ("a blue square shape", "blue square"),
    ("an orange disc", "orange circle"),
    ("a pink dot", "pink circle"),
    ("a yellow box", "yellow square"),
    ("a purple triangle, please", "purple triangle"),
    ("a white circle by itself", "white circle"),
    ("a picture of a blue circle", "blue circle"),
    ("please draw a red square", "red square"),
    ("an image with a single green circle", "green circle"),
    ("A yellow Triangle", "yellow triangle"),
]
RELATION: list[tuple[str, str, str, str]] = [  # (prompt, a, relation, b): a <relation> b
    ("a red circle sitting to the left of a blue square", "red circle", "left of", "blue square"),
    ("put a red circle on the left and a blue square on the right", "red circle", "left of", "blue square"),
    ("the blue square is to the right of the red circle", "blue square", "right of", "red circle"),
    ("a yellow triangle on top of a green circle", "yellow triangle", "above", "green circle"),
    ("a green circle underneath a yellow triangle", "green circle", "below", "yellow triangle"),
    ("a purple square, and below that, an orange circle", "orange circle", "below", "purple square"),
    ("pink triangle left, white square right", "pink triangle", "left of", "white square"),
    ("a white circle to the right side of a pink square", "white circle", "right of", "pink square"),
    ("an orange triangle placed above a blue circle", "orange triangle", "above", "blue circle"),
    ("a blue circle positioned beneath an orange triangle", "blue circle", "below", "orange triangle"),
    ("a green square with a red triangle to the left of it", "red triangle", "left of", "green square"),
    ("a red triangle, and to its right a green square", "green square", "right of", "red triangle"),
    (
        "a yellow circle next to a purple square, the circle on the left",
        "yellow circle",
        "left of",
        "purple square",
    ),
    ("a purple circle higher up than a yellow square", "purple circle", "above", "yellow square"),
    ("a yellow square lower down than a purple circle", "yellow square", "below", "purple circle"),
    (
        "a white triangle is on the left side of an orange square",
        "white triangle",
        "left of",
        "orange square",
    ),
    (
        "an orange square to the right of a white triangle, please",
        "orange square",
        "right of",
        "white triangle",
    ),
    ("a blue triangle stacked over a pink circle", "blue triangle", "above", "pink circle"),
    ("a pink circle under a blue triangle, on black", "pink circle", "below", "blue triangle"),
    ("left: a green circle. right: a red square.", "green circle", "left of", "red square"),
    ("top: a purple triangle, bottom: a white circle", "purple triangle", "above", "white circle"),
    ("a white circle at the bottom with a purple triangle above", "white circle", "below", "purple triangle"),
    ("draw a yellow triangle and put a blue square to its left", "blue square", "left of", "yellow triangle"),
    ("a red square stacked above a red circle", "red square", "above", "red circle"),
    (
        "an orange circle and a green triangle, the triangle on the right",
        "green triangle",
        "right of",
        "orange circle",
    ),
    ("a pink square over on the left of a yellow circle", "pink square", "left of", "yellow circle"),
    ("a blue circle to the rigth of a white square", "blue circle", "right of", "white square"),
    ("a green triangle just below a purple square", "green triangle", "below", "purple square"),
    ("Red Circle Above Blue Triangle", "red circle", "above", "blue triangle"),
    (
        "a white square, with an orange triangle sitting on top of it",
        "orange triangle",
        "above",
        "white square",
    ),
    (
        "a yellow square beside a pink triangle, with the square on the left",
        "yellow square",
        "left of",
        "pink triangle",
    ),
    ("I'd like a purple circle to the left of a green circle", "purple circle", "left of", "green circle"),
    ("a blue square placed lower than a red triangle", "blue square", "below", "red triangle"),
    ("a pink triangle up above an orange square", "pink triangle", "above", "orange square"),
    ("an orange square down below a pink triangle", "orange square", "below", "pink triangle"),
    ("on the right a white circle, on the left a blue triangle", "white circle", "right of", "blue triangle"),
    (
        "a green square and a yellow triangle side by side, green square first (left)",
        "green square",
        "left of",
        "yellow triangle",
    ),
    ("a red circle that is below a white square", "red circle", "below", "white square"),
    (
        "a purple square to the left hand side of an orange circle",
        "purple square",
        "left of",
        "orange circle",
    ),
    ("a yellow circle over top of a blue square", "yellow circle", "above", "blue square"),
    ("a photo of a green circle to the right of a pink square", "green circle", "right of", "pink square"),
    ("there's a blue triangle and, beneath it, a red square", "red square", "below", "blue triangle"),
]
COUNT: list[tuple[str, int, str]] = [  # (prompt, count, object)
    ("draw 3 blue squares please", 3, "blue square"),
    ("I want three squares, all blue", 3, "blue square"),
    ("a pair of red circles", 2, "red circle"),
    ("two circles, both pink", 2, "pink circle"),
    ("4 green triangles on black", 4, "green triangle"),
    ("four yellow circles in total", 4, "yellow circle"),
    ("a trio of orange triangles", 3, "orange triangle"),
    ("just one purple square", 1, "purple square"),
    ("1 white circle", 1, "white circle"),
    ("exactly 2 green squares", 2, "green square"),
    ("three red triangles scattered around", 3, "red triangle"),
    ("3 circles that are yellow", 3, "yellow circle"),
    ("Two Blue Triangles Please", 2, "blue triangle"),
    ("a picture with four pink squares", 4, "pink square"),
    ("2 orange circles, spaced apart", 2, "orange circle"),
    ("can you draw four purple circles", 4, "purple circle"),
    ("a set of 3 white squares", 3, "white square"),
    ("only one green circle", 1, "green circle"),
    ("a couple of yellow squares (two)", 2, "yellow square"),
    ("4 red squares, no other shapes", 4, "red square"),
    ("three trianlges, blue ones", 3, "blue triangle"),
    ("four white triangles please", 4, "white triangle"),
    ("1 orange square on its own", 1, "orange square"),
    ("two purple triangles side by side", 2, "purple triangle"),
    ("a group of 4 orange circles", 4, "orange circle"),
    ("make it 3 pink triangles", 3, "pink triangle"),
    ("one single yellow triangle", 1, "yellow triangle"),
    ("two white circles on a black canvas", 2, "white circle"),
    ("three green circles, nothing else", 3, "green circle"),
    ("four circles, all of them blue", 4, "blue circle"),
    ("a red circle - just the one", 1, "red circle"),
    ("two squares coloured purple", 2, "purple square"),
    ("I'd like 3 orange squares", 3, "orange square"),
    ("4x yellow triangle", 4, "yellow triangle"),
    ("a pink circle, only one", 1, "pink circle"),
    ("2 squares in blue", 2, "blue square"),
    ("3 triangles", 3, "triangle"),
    ("two circles", 2, "circle"),
    ("four squares", 4, "square"),
    ("exactly three green triangles please", 3, "green triangle"),
    ("one triangle (blue)", 1, "blue triangle"),
    ("there are 4 pink circles", 4, "pink circle"),
]
TWO: list[tuple[str, str, str]] = [  # (prompt, a, b): both present, no relation asked
    ("a circle and a triangle", "circle", "triangle"),
    ("a square and a circle", "square", "circle"),
    ("draw a triangle plus a square", "triangle", "square"),
    ("a green circle and a square", "green circle", "square"),
    ("a triangle and a blue circle", "triangle", "blue circle"),
    ("a red square and a yellow triangle", "red square", "yellow triangle"),
    ("an orange circle along with a white square", "orange circle", "white square"),
    ("a pink triangle and also a green square", "pink triangle", "green square"),
    ("a purple circle & a blue triangle", "purple circle", "blue triangle"),
    ("both a white triangle and a red circle", "white triangle", "red circle"),
    ("one yellow square, one purple circle", "yellow square", "purple circle"),
    ("a blue square together with an orange triangle", "blue square", "orange triangle"),
    ("a green triangle and a pink circle anywhere in the picture", "green triangle", "pink circle"),
    ("a white square and a yellow circle", "white square", "yellow circle"),
    ("a red triangle with a purple square", "red triangle", "purple square"),
    ("an orange square and a green circle on black", "orange square", "green circle"),
    ("Circle and Square", "circle", "square"),
    ("a picture containing a triangle and a circle", "triangle", "circle"),
    ("a blue circle, and a pink square somewhere too", "blue circle", "pink square"),
    ("two shapes: a yellow triangle and a red square", "yellow triangle", "red square"),
]
BINDING: list[tuple[str, str, str]] = [  # (prompt, a, b) pairs with colours swapped between them
    ("a blue circle and a red square", "blue circle", "red square"),
    ("a red circle and a blue square", "red circle", "blue square"),
    ("a green triangle and a yellow circle", "green triangle", "yellow circle"),
    ("a yellow triangle and a green circle", "yellow triangle", "green circle"),
    ("a pink square with an orange triangle", "pink square", "orange triangle"),
    ("an orange square with a pink triangle", "orange square", "pink triangle"),
    ("a purple circle and a white triangle", "purple circle", "white triangle"),
    ("a white circle and a purple triangle", "white circle", "purple triangle"),
    ("draw a red triangle and a green square", "red triangle", "green square"),
    ("draw a green triangle and a red square", "green triangle", "red square"),
    ("a blue square plus a yellow circle", "blue square", "yellow circle"),
    ("a yellow square plus a blue circle", "yellow square", "blue circle"),
    ("an orange circle and a purple square", "orange circle", "purple square"),
    ("a purple circle and an orange square", "purple circle", "orange square"),
    ("a pink circle alongside a green triangle", "pink circle", "green triangle"),
    ("a green circle alongside a pink triangle", "green circle", "pink triangle"),
    ("a white square and a red circle", "white square", "red circle"),
    ("a red square and a white circle", "red square", "white circle"),
    ("a red circle and a blue circle", "red circle", "blue circle"),
    ("a blue circle and a red circle, two circles", "blue circle", "red circle"),
    ("a yellow triangle and an orange triangle", "yellow triangle", "orange triangle"),
    ("an orange triangle and a yellow triangle, different colours", "orange triangle", "yellow triangle"),
    ("a Green Square and a Blue Triangle", "green square", "blue triangle"),
    ("a blue square and a green triangle", "blue square", "green triangle"),
    ("a pink square and a purple circle", "pink square", "purple circle"),
    ("a purple square and a pink circle", "purple square", "pink circle"),
    ("I'd like a white triangle and a blue square", "white triangle", "blue square"),
    ("I'd like a blue triangle and a white square", "blue triangle", "white square"),
    ("a red triangle and an orange circle", "red triangle", "orange circle"),
    ("an orange triangle and a red circle", "orange triangle", "red circle"),
]


def _obj(text: str, **extra: Any) -> dict[str, Any]:
    """``"red circle"`` -> {"shape": "circle", "colour": "red"}; ``"circle"`` -> {"shape": "circle"}."""
    *colour, shape = text.split()
    out: dict[str, Any] = {"shape": shape}
    if colour:
        out["colour"] = colour[0]
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _shapes(*objects: dict[str, Any], relation: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"domain": "shapes", "objects": list(objects)}
    if relation:
        out["relation"] = relation
    return out


def freeform_entries() -> list[tuple[str, str, dict[str, Any], str]]:
    """(category, prompt, expect, split group key) for every prompt, in file order."""
    rows: list[tuple[str, str, dict[str, Any], str]] = []
    for text, name in EMOJI[:MAX_EMOJI]:
        rows.append(("single_object", text, {"domain": "emoji", "name": name}, text))
    for text, cls, colour in FASHION:
        expect: dict[str, Any] = {"domain": "fashion", "class": cls}
        if colour:
            expect["colour"] = colour
        rows.append(("colour" if colour else "single_object", text, expect, text))
    for text, obj in SHAPE_SINGLE:
        rows.append(("single_object", text, _shapes(_obj(obj)), text))
    for text, position, size, obj in ABSOLUTE:
        rows.append(("absolute_position", text, _shapes(_obj(obj, size=size, position=position)), text))
    for text, size, obj in SIZE:
        rows.append(("size", text, _shapes(_obj(obj, size=size)), text))
    for text, a, relation, b in RELATION:
        rows.append(("position", text, _shapes(_obj(a), _obj(b), relation=relation), text))
    for text, count, obj in COUNT:
        rows.append(("counting", text, _shapes(_obj(obj, count=count)), text))
    for text, a, b in TWO:
        rows.append(("two_object", text, _shapes(_obj(a), _obj(b)), text))
    for i, (text, a, b) in enumerate(BINDING):
        rows.append(("colour_attribution", text, _shapes(_obj(a), _obj(b)), f"pair{i // 2}"))
    return rows


def _hash(text: str) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}/{text}".encode()).hexdigest()


def assign_splits(entries: list[tuple[str, str, dict[str, Any], str]]) -> list[str]:
    """'dev' / 'test' per entry: per category, groups ordered by hash, the first DEV_FRACTION to dev."""
    groups: dict[str, list[str]] = {}
    for cat, _, _, key in entries:
        if key not in groups.setdefault(cat, []):
            groups[cat].append(key)
    dev: set[tuple[str, str]] = set()
    for cat, keys in groups.items():
        ordered = sorted(keys, key=_hash)
        dev.update((cat, k) for k in ordered[: round(DEV_FRACTION * len(ordered))])
    return ["dev" if (cat, key) in dev else "test" for cat, _, _, key in entries]


def build_freeform() -> list[dict[str, Any]]:
    """The suite as JSON-ready dicts (ids f000.., fixed split)."""
    entries = freeform_entries()
    return [
        {"id": f"f{i:03d}", "prompt": text, "category": cat, "split": split, "expect": expect}
        for i, ((cat, text, expect, _), split) in enumerate(zip(entries, assign_splits(entries)))
    ]


def write_freeform(path: str | Path) -> Path:
    from ..checkpoint import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in build_freeform()).encode())
    return path


def main(argv: list[str] | None = None) -> int:
    from .classifier import assets_dir
    from .prompts import SUITES

    p = argparse.ArgumentParser(prog="bitdance build-freeform")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write prompts_freeform.jsonl")
    b.add_argument("--out", default=str(assets_dir() / SUITES["freeform"]))
    args = p.parse_args(argv)
    print(write_freeform(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
