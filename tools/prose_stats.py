"""Prose targets of the notebooks: how much of each notebook's prose is lab log, and how long
its sentences are.

    python tools/prose_stats.py [notebooks/*.ipynb]

For each notebook it prints the number of sentences in its markdown, the share of them that
talk about runs, seeds, devices or releases (the words in LAB_LOG), and the average sentence
length in words. Equations, code, tables, links and headings are left out before counting.
Targets (tests/test_prose.py): lab-log share under 10 %, average sentence under 22 words.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

LAB_LOG = re.compile(r"\b(seeds?|runs?|ran|CPU|GPU|H100|H200|device|chip|released code|release's|"
                     r"the release|reproduction|reproduce[ds]?|torch \d|versions?|sweep|session)\b", re.I)
MAX_LAB_LOG_SHARE = 0.10
MAX_WORDS_PER_SENTENCE = 22


def prose(markdown: str) -> str:
    """Markdown without display and inline maths, code, tables, headings, HTML tags and link targets."""
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", "X", text)
    text = re.sub(r"`[^`]*`", "X", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<[^>]+>", " ", text)
    lines = [l for l in text.splitlines() if not l.lstrip().startswith(("#", "|"))]
    return "\n".join(lines)


def sentences(markdown: str) -> list[str]:
    """The sentences of a markdown cell (list items count as sentences)."""
    text = prose(markdown)
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9*(\"'])|\n\s*[-*] |\n\s*\d+\. |\n\n", text)
    return [p.strip() for p in parts if len(p.split()) >= 3]


def stats(path) -> dict:
    nb = json.loads(Path(path).read_text())
    sents = [s for c in nb["cells"] if c["cell_type"] == "markdown"
             for s in sentences("".join(c["source"]))]
    words = [len(s.split()) for s in sents]
    lab = [s for s in sents if LAB_LOG.search(s)]
    return {"notebook": Path(path).name, "sentences": len(sents),
            "lab_log_share": len(lab) / max(len(sents), 1),
            "words_per_sentence": sum(words) / max(len(words), 1), "lab_log": lab}


def main(argv=None) -> int:
    paths = (sys.argv[1:] if argv is None else argv) or sorted(
        str(p) for p in Path(__file__).resolve().parents[1].glob("notebooks/[0-9]*.ipynb"))
    print(f"{'notebook':40s} {'sentences':>9s} {'lab log':>8s} {'words/sentence':>15s}")
    for p in paths:
        s = stats(p)
        print(f"{s['notebook']:40s} {s['sentences']:9d} {s['lab_log_share']:8.1%} {s['words_per_sentence']:15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
