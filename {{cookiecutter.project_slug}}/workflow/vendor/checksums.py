#!/usr/bin/env python3
"""The sha256 of each file of workflow/vendor/ as shipped, recorded in its SHA256SUMS.

This folder is the template's library, left as shipped. SHA256SUMS (``sha256sum`` format) lists
every file in it but itself and PATCHES.md, so an edit, a new file or a missing one shows::

    python workflow/vendor/checksums.py check    # what differs (exit 1); tests/test_vendor.py asks the same
    python workflow/vendor/checksums.py record   # after a deliberate patch: rewrite SHA256SUMS

``cd workflow/vendor && sha256sum -c SHA256SUMS`` checks the listed files with coreutils alone.

From the Snakemake repository template, release {{ cookiecutter._template_version }}.
"""

import argparse
import hashlib
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent
SUMS = "SHA256SUMS"
PATCHES = "PATCHES.md"  # the user's notes on deliberate patches: not recorded
HOW_TO_RECORD = (
    "workflow/vendor/ is the template's library, left as shipped (updates arrive with cruft update). "
    "Undo an accidental change with git restore; to keep a deliberate patch, run `make vendor-record` "
    f"and note which file you changed and why in workflow/vendor/{PATCHES}."
)


def shipped_files(folder: Path = VENDOR) -> list[str]:
    """The files SHA256SUMS covers, relative to ``folder``, sorted (Python's caches left out)."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.relative_to(folder).parts
        and path.relative_to(folder).as_posix() not in (SUMS, PATCHES)
    )


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def recorded(folder: Path = VENDOR) -> dict[str, str]:
    """{file: sha256} as SHA256SUMS lists them (empty without SHA256SUMS)."""
    listed = {}
    if (folder / SUMS).is_file():
        for line in (folder / SUMS).read_text(encoding="utf-8").splitlines():
            digest, _, name = line.partition(" ")
            listed[name.removeprefix(" ").removeprefix("*")] = digest
    return listed


def problems(folder: Path = VENDOR) -> list[str]:
    """One line per file that is edited, unlisted or missing, naming it."""
    listed, present = recorded(folder), shipped_files(folder)
    found = [] if (folder / SUMS).is_file() else [f"workflow/vendor/{SUMS}: missing"]
    for name in sorted(set(listed) | set(present)):
        where = f"workflow/vendor/{name}"
        if name not in present:
            found.append(f"{where}: missing (listed in {SUMS})")
        elif name not in listed:
            found.append(f"{where}: a new file, not listed in {SUMS}")
        elif sha256(folder / name) != listed[name]:
            found.append(f"{where}: edited (its sha256 differs from the one in {SUMS})")
    return found


def record(folder: Path = VENDOR) -> list[str]:
    """Rewrite SHA256SUMS from the files as they are now; return what differed before."""
    changed = problems(folder)
    lines = "".join(f"{sha256(folder / name)}  {name}\n" for name in shipped_files(folder))
    (folder / SUMS).write_text(lines, encoding="utf-8")
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["check", "record"])
    args = parser.parse_args(argv)
    if args.command == "record":
        changed = record()
        if changed:
            print("\n".join(["Recorded in workflow/vendor/SHA256SUMS:", *changed]))
            print(f"Note which file you changed and why in workflow/vendor/{PATCHES}, and commit both.")
        return 0
    found = problems()
    if found:
        print("\n".join([*found, HOW_TO_RECORD]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
