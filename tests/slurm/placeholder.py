"""An empty stand-in for eNTERFACE'05: the folder layout and file names of the real archive, every video 0 bytes.

Enough for the manifest (it reads paths only) and so for a dry run of the whole DAG with the eNTERFACE'05 preset:

    python tests/slurm/placeholder.py /tmp/enterface05
    snakemake --cores 1 --configfile workflow/presets/enterface05.yaml --config dataset_root=/tmp/enterface05 \\
        results/manifest.parquet
    snakemake --profile workflow/profiles/slurm -n --configfile workflow/presets/enterface05.yaml \\
        --config dataset_root=/tmp/enterface05
"""

from __future__ import annotations

import sys
from pathlib import Path

CODES = ("an", "anger"), ("di", "disgust"), ("fe", "fear"), ("ha", "happiness"), ("sa", "sadness"), ("su", "surprise")


def make_enterface_tree(root: Path, subjects: int = 44, sentences: int = 5) -> int:
    """Write the tree; returns the number of videos (1320 for the defaults: 44 subjects x 6 emotions x 5)."""
    n = 0
    for s in range(1, subjects + 1):
        for code, emotion in CODES:
            for k in range(1, sentences + 1):
                path = Path(root, f"subject {s}", emotion, f"sentence {k}", f"s{s}_{code}_{k}.avi")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                n += 1
    return n


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(make_enterface_tree(Path(sys.argv[1])), "placeholder videos under", sys.argv[1])
