"""Writes `imagenet_class_index.json` (Keras's `{"0": ["n01440764", "tench"], ...}` content) from the ImageNet
synset list and WordNet lemmas that the `timm` wheel ships (timm/data/_info/imagenet_synsets.txt, 1,000 ids
in class order, and imagenet_synset_to_lemma.txt). Keras names each class by its first lemma with spaces as
underscores. Offline: `pip download --no-deps timm -d /tmp/timm`, then
`python -m rconv.applications._make_imagenet_index /tmp/timm/timm-*.whl`."""
from __future__ import annotations

import json
import os
import sys
import zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_class_index.json")
# Rows that Keras's own file has (checked against keras's imagenet_class_index.json).
KNOWN_ROWS = {0: ("n01440764", "tench"), 1: ("n01443537", "goldfish"), 207: ("n02099601", "golden_retriever"),
              134: ("n02012849", "crane"), 517: ("n03126707", "crane"), 999: ("n15075141", "toilet_tissue")}


def build(wheel: str) -> dict:
    with zipfile.ZipFile(wheel) as z:
        synsets = z.read("timm/data/_info/imagenet_synsets.txt").decode().split()
        lemmas = {}
        for line in z.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines():
            wnid, _, text = line.partition("\t")
            lemmas[wnid] = text
    if len(synsets) != 1000:
        raise ValueError(f"expected 1000 synsets in {wheel}, found {len(synsets)}")
    index = {str(i): [w, lemmas[w].split(",")[0].strip().replace(" ", "_")] for i, w in enumerate(synsets)}
    for i, row in KNOWN_ROWS.items():
        if tuple(index[str(i)]) != row:
            raise ValueError(f"row {i}: built {index[str(i)]}, Keras has {list(row)}")
    return index


def main(argv) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    index = build(argv[0])
    with open(OUT, "w") as f:
        json.dump(index, f, separators=(", ", ": "))
    print(f"wrote {OUT} ({len(index)} classes)")


if __name__ == "__main__":
    main(sys.argv[1:])
