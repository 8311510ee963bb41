#!/usr/bin/env python3
"""Check the internal links of README.md and the book (docs/).

- Every relative link `[text](path)` / `[text](path#anchor)` outside code
  must name a file or directory that exists, and an `#anchor` a heading of
  that page (GitHub's and mdBook's slugs: lower case, punctuation dropped,
  spaces to dashes).
- Every page of docs/ is listed in docs/SUMMARY.md (else the book never
  shows it).

External links (http, https, mailto) are not fetched.
Exit status 0 when every link resolves.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!\!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def strip_code(text: str, inline: bool = True) -> str:
    """The text with fenced blocks (and inline code) blanked (line numbers kept)."""
    out, fence = [], None
    for line in text.splitlines():
        m = re.match(r"^\s*(```+|~~~+)", line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            out.append("")
            continue
        if m:
            fence = m.group(1)
            out.append("")
            continue
        out.append(re.sub(r"`+[^`]*`+", "``", line) if inline else line)
    return "\n".join(out)


def slug(heading: str) -> str:
    h = re.sub(r"`([^`]*)`", r"\1", heading)
    h = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", h)
    h = h.strip().lower()
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def anchors(path: Path):
    seen, out = {}, set()
    for line in strip_code(path.read_text(), inline=False).splitlines():
        m = HEADING.match(line)
        if m:
            s = slug(m.group(2))
            n = seen.get(s, 0)
            seen[s] = n + 1
            out.add(s if n == 0 else f"{s}-{n}")
    return out


def main() -> int:
    pages = [ROOT / "README.md"] + sorted(DOCS.rglob("*.md"))
    errors = []
    for page in pages:
        text = strip_code(page.read_text())
        for n, line in enumerate(text.splitlines(), 1):
            for m in list(LINK.finditer(line)) + list(IMAGE.finditer(line)):
                target = m.group(1)
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                dest = (page.parent / file_part).resolve() if file_part else page
                where = f"{page.relative_to(ROOT)}:{n}"
                try:
                    rel = str(dest.relative_to(ROOT))
                except ValueError:
                    errors.append(f"{where}: {target} leaves the repository")
                    continue
                if not dest.exists():
                    errors.append(f"{where}: {target} does not exist")
                    continue
                if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    errors.append(f"{where}: no heading #{anchor} in {rel}")
    summary = (DOCS / "SUMMARY.md").read_text() if (DOCS / "SUMMARY.md").exists() else ""
    listed = {(DOCS / m.group(1)).resolve() for m in LINK.finditer(strip_code(summary))}
    for page in sorted(DOCS.rglob("*.md")):
        if page.name == "SUMMARY.md" or "node_modules" in page.parts:
            continue
        if page.resolve() not in listed:
            errors.append(f"{page.relative_to(ROOT)}: not listed in docs/SUMMARY.md")
    for e in errors:
        print(f"links: {e}")
    print(f"links: {len(pages)} pages checked, {len(errors)} broken")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
