"""Regenerate the golden results the notebook regression tests compare against.

Run from the checkout after an intended change of numbers, and commit the diff with the
reason:  python tests/golden/update.py [name ...]

Each golden file keeps, per estimate, the numbers that must not move, taken from a
fresh `evaluation run` of ``params/<name>.yaml`` on the synthetic default data.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIELDS = ("estimate", "ci_low", "ci_high", "se", "p_value")


def golden_of(results: dict) -> dict:
    """The part of a results.json that is frozen in a golden file."""
    return {
        "name": results["name"],
        "design": results["design"],
        "headline": results["headline"],
        "estimates": {e["name"]: {k: e[k] for k in FIELDS} for e in results["estimates"]},
    }


def main(names: list[str]) -> None:
    from evaluation import runner

    names = names or [p.stem for p in sorted((REPO / "params").glob("*.yaml"))]
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            out = runner.run(REPO / "params" / f"{name}.yaml", output_dir=Path(tmp) / name)
            if not out.ok:
                raise SystemExit(f"{name}: {out.error}")
            results = json.loads((Path(tmp) / name / "results.json").read_text())
        (HERE / f"{name}.json").write_text(json.dumps(golden_of(results), indent=2) + "\n")
        print(f"wrote tests/golden/{name}.json")


if __name__ == "__main__":
    main(sys.argv[1:])
