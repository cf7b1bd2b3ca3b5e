"""Write ``src/percept_template/learned/``: an EXAMPLE of learned heads shipped in a plugin package.

The heads are learned by ``percept.eval.learn.train_heads`` on random AlexNet weights (``random:0``) and a
small synthetic 2AFC set whose judgements come from a hidden observer on that same random network. They
show the mechanics (a ``heads.json`` with its tensor file, registered as a preset, reloaded with the weights
it records); they are not a perceptual metric. A real plugin runs ``percept learn`` on BAPPS or NIGHTS
with pretrained weights and ships that ``OUT/heads.json`` and ``OUT/heads.safetensors`` instead.

Run from ``plugins/percept-template``: ``python scripts/make_example_heads.py`` (needs percept's ``eval``
extra; a few seconds).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from percept.eval.datasets import load_database
from percept.eval.datasets.synthetic import PlantedObserver, make_2afc
from percept.eval.learn import db_subsets, seeded_backbone, train_heads

OUT = Path(__file__).resolve().parents[1] / "src" / "percept_template" / "learned"
TAPS = ["conv1", "conv2"]


def main() -> None:
    warnings.simplefilter("ignore")  # random weights, on purpose
    with tempfile.TemporaryDirectory() as folder:
        observer = PlantedObserver(seeded_backbone("alexnet", 0), TAPS, seed=0)
        db = load_database("bapps", make_2afc(folder, observer, n_train=100, n_val=50, size=32))
        train, val = db_subsets(db, "train/*"), db_subsets(db, "val/*")
        options = dict(weights="random:0", taps=TAPS, size=32, epochs=20, decay_epochs=5, lr=1e-2, dropout=False)
        result = train_heads(train, "alexnet", val=val, **options)
    result.data["path"] = "synthetic (percept.eval.datasets.synthetic.make_2afc, seed 0): an example only"
    file = result.save(OUT)
    print(f"wrote {file}; held-out 2AFC {result.scores['before']['all']:.3f} -> {result.scores['after']['all']:.3f}")


if __name__ == "__main__":
    main()
