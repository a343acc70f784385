"""Annotations: parsing a 200-gene esummary reply, and writing the prompts of 19,299 genes (paper scale).

Network time is not measured (NCBI is not reachable here): at 3 requests/s and 200 GeneIDs per
request, 19,299 genes take >= 97 requests, >= 32 s of waiting; 10 s with an API key.
"""

import re
import time
from pathlib import Path

from gta.annotations import format_prompt, parse_esummary

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "entrez" / "esummary_batch.xml"


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    data = DATA.read_bytes()
    doc = re.search(rb'<DocumentSummary uid="1">.*?</DocumentSummary>\n', data, re.S).group(0)
    head = data[: data.index(b"<DocumentSummary ")]
    tail = data[data.rindex(b"</DocumentSummary>") + len(b"</DocumentSummary>\n") :]
    reply = head + b"".join(doc.replace(b'uid="1"', b'uid="%d"' % i) for i in range(1, 201)) + tail
    t = best_of(lambda: parse_esummary(reply))
    print(f"parse_esummary: 200-gene reply ({len(reply) / 1e6:.2f} MB) in {t * 1e3:.1f} ms ({200 / t:,.0f} genes/s)")
    rec = parse_esummary(reply)[1]
    n = 19_299
    t = best_of(lambda: [format_prompt(rec, "GM12878 lymphoblastoid cells") for _ in range(n)], repeat=3)
    print(f"format_prompt: {n} prompts in {t * 1e3:.0f} ms ({n / t:,.0f} prompts/s)")


if __name__ == "__main__":
    main()
