"""`stablesync profiles list|show NAME|remove NAME`: the personal profiles made by `enroll`."""

from __future__ import annotations

import argparse
import json

from stablesync.errors import UserError


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("action", choices=("list", "show", "remove"))
    p.add_argument("name", nargs="?", help="the profile (show, remove)")
    return p


def main(args: argparse.Namespace) -> int:
    from stablesync.enroll.profiles import (
        list_profiles,
        profile_dir,
        profiles_root,
        read_profile,
        remove_profile,
    )

    if args.action == "list":
        found = list_profiles()
        if not found:
            print(
                f"no profiles in {profiles_root()} (make one with `stablesync enroll NAME --camera 0"
                " --mic DEV` or `--video FILE`)"
            )
        for info in found:
            print(info.summary())
        return 0
    if args.name is None:
        raise UserError(f"profiles {args.action}: expected a profile NAME")
    if args.action == "remove":
        print(f"removed {remove_profile(args.name)}")
        return 0
    path = profile_dir(args.name)
    if not path.is_dir():
        raise UserError(f"profile {args.name}: not found in {profiles_root()}")
    info = read_profile(path)
    report_path = path / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    print(
        json.dumps({"path": str(path), "complete": info.complete, **info.details, "report": report}, indent=1)
    )
    return 0
