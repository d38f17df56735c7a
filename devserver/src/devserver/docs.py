"""`make docs` / `make docs-check`: write the generated event catalog into docs/, or fail if stale.

`python -m devserver.docs write` writes docs/asyncapi.json and docs/events.md from every
service's contract (common.catalog); `check` exits 1 naming each file that differs.
"""

import argparse
import sys
from pathlib import Path

from common.catalog import render

from devserver.system import repo_root


def render_all() -> dict[str, str]:
    """Every generated file under docs/, by name, as it should be committed."""
    return render()


def stale_files(docs_dir: Path) -> list[str]:
    """The generated files whose committed content differs from what would be generated now."""
    return [
        name
        for name, content in render().items()
        if not (docs_dir / name).exists() or (docs_dir / name).read_text() != content
    ]


def write(docs_dir: Path) -> list[str]:
    docs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render().items():
        (docs_dir / name).write_text(content)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devserver.docs", description=__doc__)
    parser.add_argument("action", choices=["write", "check"])
    parser.add_argument("--docs-dir", type=Path, default=repo_root() / "docs")
    args = parser.parse_args(argv)
    if args.action == "write":
        for name in write(args.docs_dir):
            print(f"wrote {args.docs_dir / name}")
        return 0
    stale = stale_files(args.docs_dir)
    for name in stale:
        print(f"{args.docs_dir / name} is stale: run `make docs` and commit it", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
