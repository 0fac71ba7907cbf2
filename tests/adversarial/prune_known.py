"""Removes from known_forwarded.txt and known_false_denies.txt every id
that build/adversarial/results.txt shows as passing, after a fix made them pass:

    .venv/bin/python tests/peers/with_moto.py -- .venv/bin/pytest -q tests/python/test_adversarial_corpus.py
    .venv/bin/python tests/adversarial/prune_known.py

It only ever removes lines (the lists only shrink); a case that newly fails is printed, never
added: that is a regression to fix, or a decision to write down by hand with its reason.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parents[1] / "build" / "adversarial" / "results.txt"
KNOWN_FORWARDED = HERE / "known_forwarded.txt"
KNOWN_FALSE_DENIES = HERE / "known_false_denies.txt"


def main() -> int:
    text = RESULTS.read_text()
    if any(section not in text for section in ("must-deny total:", "must-allow near misses:", "must-allow: ")):
        print(f"{RESULTS} is not a complete run of the corpus; run the test first", file=sys.stderr)
        return 2
    failing = set(re.findall(r"^  FAIL (\S+): ", text, re.M))
    false_denies = set(re.findall(r"^  FALSE DENY (\S+): ", text, re.M))
    removed = 0
    for path, still_failing in ((KNOWN_FORWARDED, failing), (KNOWN_FALSE_DENIES, false_denies)):
        kept = []
        listed = set()
        for line in path.read_text().splitlines():
            key = line.split(" ", 1)[0]
            if line and not line.startswith("#"):
                listed.add(key)
                if key not in still_failing:
                    removed += 1
                    continue
            kept.append(line)
        path.write_text("\n".join(kept) + "\n")
        for case_id in sorted(still_failing - listed):
            print(f"NEW FAILURE (not listed, not added): {case_id}")
    print(f"removed {removed} id(s) that now pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
