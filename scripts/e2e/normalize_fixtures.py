#!/usr/bin/env python3
"""Turns the hook payloads scripts/e2e-agents.sh --capture saved into fixtures/hooks/<agent>/.

Usage: normalize_fixtures.py CAPTURE_DIR FIXTURE_DIR --workspace DIR --home DIR

CAPTURE_DIR holds one file per hook call (`<nanoseconds>-<pid>.json` from stdin,
`.arg.json` from the last argument, as Codex's notify passes it), in the order they ran.
Each is written to FIXTURE_DIR as `<event>[-<tool>][-<detail>].json`, in kebab case:
`post-tool-use-write.json`, `post-tool-use-bash-failed.json` (the command that fails),
`post-tool-use-apply-patch-add.json` / `-update.json`, `session-start-compact.json`,
`notify-agent-turn-complete.json`; a name seen before (Gemini fires PreCompress before
every model request) keeps its first payload. The scratch workspace becomes
`/home/user/project` and the scratch home `/home/user` (also in the dash-escaped form
Claude Code names its transcript folder with), which is what tests/it/hooks.rs expects.
The fixture folder's other `.json` files are removed, except `*-legacy.json` ones.
"""

import argparse
import json
import os
import re
import sys

FAILING_COMMAND = "cat docs/missing.md"


def kebab(name):
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def fixture_name(payload):
    if "hook_event_name" not in payload:
        return "notify-" + kebab(payload.get("type", "unknown"))
    name = kebab(payload["hook_event_name"])
    tool = payload.get("tool_name")
    if tool:
        name += "-" + kebab(tool)
    source = payload.get("source")
    if payload["hook_event_name"] == "SessionStart" and source and source != "startup":
        name += "-" + kebab(source)
    command = (payload.get("tool_input") or {}).get("command")
    if isinstance(command, str):
        if command.strip() == FAILING_COMMAND and payload["hook_event_name"] != "PostToolUseFailure":
            name += "-failed"
        if "*** Add File:" in command:
            name += "-add"
        elif "*** Update File:" in command:
            name += "-update"
    return name


def normalize(value, replacements):
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [normalize(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v, replacements) for k, v in value.items()}
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture")
    parser.add_argument("fixtures")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--home", required=True)
    args = parser.parse_args()
    workspace = os.path.realpath(args.workspace)
    home = os.path.realpath(args.home)
    dashed = lambda path: re.sub(r"[^A-Za-z0-9]", "-", path)  # noqa: E731
    replacements = [
        (workspace, "/home/user/project"),
        (home, "/home/user"),
        (dashed(workspace), dashed("/home/user/project")),
    ]
    files = sorted(f for f in os.listdir(args.capture) if f.endswith(".json"))
    if not files:
        print(f"normalize_fixtures: nothing captured in {args.capture}", file=sys.stderr)
        return 1
    os.makedirs(args.fixtures, exist_ok=True)
    for old in os.listdir(args.fixtures):
        if old.endswith(".json") and not old.endswith("-legacy.json"):
            os.remove(os.path.join(args.fixtures, old))
    written = []
    for name in files:
        with open(os.path.join(args.capture, name), encoding="utf-8") as f:
            payload = json.load(f)
        target = fixture_name(payload)
        if target in written:
            continue
        written.append(target)
        text = json.dumps(normalize(payload, replacements), indent=2, ensure_ascii=False)
        for leak in (workspace, home):
            if leak in text:
                raise SystemExit(f"normalize_fixtures: {leak} left in {target}")
        with open(os.path.join(args.fixtures, target + ".json"), "w", encoding="utf-8") as out:
            out.write(text + "\n")
    print(f"{args.fixtures}: {', '.join(written)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
