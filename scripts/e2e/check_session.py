#!/usr/bin/env python3
"""Checks the cairn session an agent's hooks recorded in scripts/e2e-agents.sh's turn.

Usage: check_session.py AGENT PROJECT CAIRN

Reads the session back with `cairn log --json` (the steps' kinds) and git (each step's
subject from `git log`, the files it changed from `git show`, the final tree), and compares
them with what the scripted turn of scripts/e2e/mock_models.py did. Prints the steps and
any mismatch; exits 1 on a mismatch. Standard library only.
"""

import json
import subprocess
import sys

OK = "mkdir -p docs && echo 'greet(name) says hello' > docs/greet.md"
FAILING = "cat docs/missing.md"
PROMPT = "prompt: Add a greet function in src/greet.rs and mention it in the README"
ANSWER = "model: I added greet() in src/greet.rs"
GREET = 'pub fn greet(name: &str) -> String {\n    format!("Hello, {name}!")\n}\n'

# (kind, subject or subject prefix ending in "…", files the step changes). A compact step
# may come anywhere (only with --compact); the failing command's subject may be given as a
# pair: (as it must be, as it may be).
EXPECTED = {
    "claude-code": [
        ("prompt", PROMPT, []),
        ("tool", "Write src/greet.rs", ["src/greet.rs"]),
        ("tool", "Read README.md", []),
        ("tool", "Edit README.md", ["README.md"]),
        ("tool", f"Bash: {OK}", ["docs/greet.md"]),
        ("tool", f"Bash: {FAILING} (failed)", []),
        ("model", ANSWER + "…", []),
    ],
    "codex": [
        ("prompt", PROMPT, []),
        ("tool", "apply_patch src/greet.rs", ["src/greet.rs"]),
        ("tool", "apply_patch README.md", ["README.md"]),
        ("tool", f"Bash: {OK}", ["docs/greet.md"]),
        # Codex's hook payload says a command failed only in its text (`Exit code: 1`).
        ("tool", (f"Bash: {FAILING} (failed)", f"Bash: {FAILING}"), []),
        ("model", ANSWER + "…", []),
    ],
    "gemini": [
        ("prompt", PROMPT, []),
        ("tool", "write_file src/greet.rs", ["src/greet.rs"]),
        ("tool", "replace README.md", ["README.md"]),
        ("tool", f"run_shell_command: {OK}", ["docs/greet.md"]),
        ("tool", f"run_shell_command: {FAILING} (failed)", []),
        ("model", ANSWER + "…", []),
    ],
}


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def subject_matches(want, got):
    if isinstance(want, tuple):
        return any(subject_matches(w, got) for w in want)
    if want.endswith("…"):
        return got.startswith(want[:-1])
    return got == want


def main():
    agent, project, cairn = sys.argv[1:4]
    problems = []
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/cairn/sessions"], project)
    refs = refs.split()
    if len(refs) != 1:
        print(f"{agent}: expected one cairn session, found {refs}")
        return 1
    ref = refs[0]
    log = run(["git", "log", "--reverse", "--format=%H%x09%(trailers:key=Cairn-Kind,valueonly,"
               "separator=)%x09%s", ref, "--not", "HEAD"], project)
    steps = []
    for line in log.splitlines():
        commit, kind, subject = line.split("\t", 2)
        files = run(["git", "show", "--format=", "--name-only", commit, "--", ".", ":!.cairn"],
                    project).split()
        steps.append((kind.strip(), subject, files, commit))
    print(f"{agent}: session {ref}")
    for kind, subject, files, _ in steps:
        print(f"  {kind:8} {subject}  {files if files else ''}")

    logged = json.loads(run([cairn, "log", "--json"], project))
    kinds = [step.get("kind") for step in logged]
    if kinds != [kind for kind, *_ in steps]:
        problems.append(f"cairn log --json kinds {kinds} differ from the commits' trailers")

    got = [s for s in steps if s[0] != "compact"]
    want = EXPECTED[agent]
    if len(got) != len(want):
        problems.append(f"{len(got)} steps besides compactions, expected {len(want)}")
    for (kind, subject, files, _), (wkind, wsubject, wfiles) in zip(got, want):
        if kind != wkind or not subject_matches(wsubject, subject):
            problems.append(f"step {kind} {subject!r}: expected {wkind} {wsubject!r}")
        elif sorted(files) != sorted(wfiles):
            problems.append(f"step {subject!r} changed {files}, expected {wfiles}")
    # Claude Code is made to compact with /compact (manual), the others compact on their own.
    trigger = "manual" if agent == "claude-code" else "auto"
    for kind, subject, *_ in steps:
        if kind == "compact" and subject != f"compact ({trigger})":
            problems.append(f"compact step {subject!r}, expected 'compact ({trigger})'")

    tree = {
        "src/greet.rs": GREET,
        "README.md": "hello\nSee greet() in src/greet.rs.\n",
        "docs/greet.md": "greet(name) says hello\n",
    }
    for path, text in tree.items():
        shown = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=project, capture_output=True,
                               text=True).stdout
        if shown != text:
            problems.append(f"{path} at the session's tip is {shown!r}, expected {text!r}")
    body = run(["git", "log", "-1", "--format=%an%n%B", ref], project)
    if f"Cairn-Agent: {agent}" not in body or not body.startswith(f"{agent} via cairn"):
        problems.append(f"the last step does not name {agent}: {body!r}")
    if run(["git", "log", "--format=%s", "HEAD"], project).split("\n")[0] != "start":
        problems.append("HEAD moved")
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=project).returncode != 0:
        problems.append("cairn changed the user's index")

    for problem in problems:
        print(f"  MISMATCH: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
