#!/usr/bin/env bash
# e2e-agents.sh: cairn's hooks checked end to end with the real Claude Code, Codex and
# Gemini CLIs, offline. Not part of `cargo test`: it needs node/npm (the npm registry, to
# install the CLIs once), python3, git, and a built cairn.
#
# What it does, all inside one scratch folder (nothing of the real user is touched: HOME,
# CODEX_HOME and the CLIs' settings all point into it):
#
# 1. Installs pinned CLI versions with npm into <scratch>/cli (skipped when already there):
#    @anthropic-ai/claude-code@2.1.197, @openai/codex@0.169.0, @google/gemini-cli@0.61.0
#    (override with CLAUDE_CODE_VERSION, CODEX_VERSION, GEMINI_VERSION).
# 2. Starts scripts/e2e/mock_models.py on 127.0.0.1, a scripted model server speaking the
#    Anthropic Messages API, the OpenAI Responses API and the Gemini API with SSE streaming.
# 3. For each agent, makes <scratch>/<agent>/project (a git repository with README.md
#    "hello") and <scratch>/<agent>/home, configures the hooks with `cairn hook install`
#    — the project's `.claude/settings.json`; `~/.codex/config.toml` (`--user`, merged into
#    the provider settings the script writes, plus `notify`; run with
#    `codex exec --dangerously-bypass-hook-trust`); the project's `.gemini/settings.json`
#    with the folder trusted in `~/.gemini/trustedFolders.json` — and checks that
#    `cairn hook status` sees them (in capture mode it writes them by hand instead, with
#    the extra events, SessionStart and SessionEnd, that fixtures record); then it
#    runs the agent headless on the prompt "Add a greet function in src/greet.rs and
#    mention it in the README". The mock makes it write src/greet.rs, edit README.md, run
#    a command that succeeds and one that fails (`cat docs/missing.md`, exit 1), then
#    answer (Claude Code also reads README.md first, as its Edit tool requires).
# 4. Checks what cairn recorded: `cairn log --json` (the steps' kinds) and the session
#    ref's commits (`git log`/`git show`: subjects, the files each step changed, the failed
#    command marked `(failed)` for Claude Code and Gemini).
#
# Usage: scripts/e2e-agents.sh [options] [claude-code] [codex] [gemini]   (default: all)
#   --scratch DIR       scratch folder (default: a new mktemp -d; kept afterwards)
#   --cairn PATH        the cairn binary (default: $CAIRN, else target/debug/cairn, built
#                       with `cargo build --locked` if missing; honours CARGO_TARGET_DIR)
#   --capture DIR       capture mode: each hook runs a wrapper that saves its payload (stdin,
#                       or the last argument for Codex's notify) under DIR/<agent>/, then
#                       execs `cairn hook <agent>`
#   --update-fixtures   with --capture: also write the captured payloads, normalized
#                       (workspace -> /home/user/project, home -> /home/user), into
#                       fixtures/hooks/<agent>/ (see fixtures/hooks/README.md)
#   --compact           have the mock report a nearly full context once, so the agents
#                       compact (auto) and fire PreCompact/PreCompress hooks
#   -h, --help          this text
#
# The CLIs' telemetry and update checks are turned off (DISABLE_TELEMETRY,
# CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, Codex `[analytics] enabled = false`, Gemini
# `telemetry.enabled = false`, `privacy.usageStatisticsEnabled = false`); whatever still
# tries the network fails harmlessly. Hooks are configured without --with-transcript.
# Exit status: 0 when every selected agent's checks pass, 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
CLAUDE_CODE_VERSION="${CLAUDE_CODE_VERSION:-2.1.197}"
CODEX_VERSION="${CODEX_VERSION:-0.169.0}"
GEMINI_VERSION="${GEMINI_VERSION:-0.61.0}"
PROMPT="Add a greet function in src/greet.rs and mention it in the README"

scratch="" cairn="${CAIRN:-}" capture="" update=0 compact=0 agents=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scratch) scratch="$2"; shift 2 ;;
    --cairn) cairn="$2"; shift 2 ;;
    --capture) capture="$2"; shift 2 ;;
    --update-fixtures) update=1; shift ;;
    --compact) compact=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    claude-code|codex|gemini) agents+=("$1"); shift ;;
    *) echo "e2e-agents: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#agents[@]} -gt 0 ] || agents=(claude-code codex gemini)
if [ "$update" = 1 ] && [ -z "$capture" ]; then
  echo "e2e-agents: --update-fixtures needs --capture DIR" >&2; exit 2
fi
[ -n "$scratch" ] || scratch="$(mktemp -d "${TMPDIR:-/tmp}/cairn-e2e.XXXXXX")"
mkdir -p "$scratch"
scratch="$(cd "$scratch" && pwd)"
[ -z "$capture" ] || { mkdir -p "$capture"; capture="$(cd "$capture" && pwd)"; }
say() { printf '\n== %s\n' "$*" >&2; }

# ---- cairn
if [ -z "$cairn" ]; then
  target="${CARGO_TARGET_DIR:-$repo/target}"
  cairn="$target/debug/cairn"
  [ -x "$cairn" ] || (cd "$repo" && cargo build --locked)
fi
cairn="$(cd "$(dirname "$cairn")" && pwd)/$(basename "$cairn")"
[ -x "$cairn" ] || { echo "e2e-agents: no cairn at $cairn" >&2; exit 1; }

# ---- the CLIs, pinned
cli="$scratch/cli"
install() { # package version
  local installed
  installed="$(node -p "require('$cli/node_modules/$1/package.json').version" 2>/dev/null || true)"
  if [ "$installed" != "$2" ]; then
    if ! npm view "$1@$2" version >/dev/null 2>&1; then
      echo "e2e-agents: $1@$2 is not on the registry; using the newest" >&2
      set -- "$1" latest
    fi
    say "npm install $1@$2"
    npm install --prefix "$cli" --no-audit --no-fund --loglevel=error "$1@$2" >&2
  fi
}
mkdir -p "$cli"
[ -f "$cli/package.json" ] || echo '{"private": true}' >"$cli/package.json"
for agent in "${agents[@]}"; do
  case "$agent" in
    claude-code) install @anthropic-ai/claude-code "$CLAUDE_CODE_VERSION" ;;
    codex) install @openai/codex "$CODEX_VERSION" ;;
    gemini) install @google/gemini-cli "$GEMINI_VERSION" ;;
  esac
done

# ---- the workspaces and the mock
workspace_args=()
for agent in "${agents[@]}"; do
  rm -rf "$scratch/$agent"
  mkdir -p "$scratch/$agent/project" "$scratch/$agent/home"
  workspace_args+=(--workspace "$agent=$scratch/$agent/project")
done
port_file="$scratch/mock.port"
rm -f "$port_file"
mock_args=(--port-file "$port_file" --log "$scratch/mock-requests.jsonl" "${workspace_args[@]}")
[ "$compact" = 0 ] || mock_args+=(--compact)
python3 "$here/e2e/mock_models.py" "${mock_args[@]}" &
mock_pid=$!
trap 'kill "$mock_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.1; done
port="$(cat "$port_file")"
mock="http://127.0.0.1:$port"

# The command a hook runs: cairn itself, or the capturing wrapper.
hook_command() { # agent
  if [ -z "$capture" ]; then printf '%s hook %s' "$cairn" "$1"; return; fi
  local wrapper="$scratch/bin/capture-hook"
  if [ ! -x "$wrapper" ]; then
    mkdir -p "$scratch/bin"
    cat >"$wrapper" <<EOF
#!/bin/sh
# Saves a hook payload under $capture/<agent>/ (stdin, or the last argument when
# there is one, as for Codex's notify), then runs cairn hook <agent> on it.
agent="\$1"; shift
dir="$capture/\$agent"
mkdir -p "\$dir"
file="\$dir/\$(date +%s%N)-\$\$"
if [ "\$#" -gt 0 ]; then
  eval "last=\\\${\$#}"
  printf '%s' "\$last" >"\$file.arg.json"
  exec "$cairn" hook "\$agent" "\$@"
fi
cat >"\$file.json"
exec "$cairn" hook "\$agent" <"\$file.json"
EOF
    chmod +x "$wrapper"
  fi
  printf '%s %s' "$wrapper" "$1"
}

new_project() { # dir
  git -C "$1" init -q -b main
  git -C "$1" config user.name "E2E User"
  git -C "$1" config user.email "e2e@example.com"
  printf 'hello\n' >"$1/README.md"
}

# The project's first commit, with its agent settings: they are the project's, not edits
# the agent's session should start with.
commit_project() { # dir
  git -C "$1" add -A
  git -C "$1" commit -qm "start"
}

# A clean environment for an agent: only what it needs, HOME in the scratch folder.
agent_env() { # agent
  local home="$scratch/$1/home"
  echo env -i "PATH=$(dirname "$cairn"):$cli/node_modules/.bin:$(dirname "$(command -v node)"):/usr/local/bin:/usr/bin:/bin" \
    "HOME=$home" "USER=${USER:-e2e}" "TERM=dumb" "LANG=C.UTF-8" "TMPDIR=$scratch/$1/tmp" \
    "XDG_CONFIG_HOME=$home/.config" "NO_COLOR=1" "CI=1"
}

# `cairn hook install <agent> [flags]` and `cairn hook status <agent>` as a user would run
# them, in the agent's scratch home; fails the agent when status does not see the hooks.
install_hooks() { # agent project [flags]
  local agent="$1" project="$2"; shift 2
  (cd "$project" && $(agent_env "$agent") CODEX_HOME="$scratch/$agent/home/.codex" \
    "$cairn" hook install "$agent" "$@" && $(agent_env "$agent") \
    CODEX_HOME="$scratch/$agent/home/.codex" "$cairn" hook status "$agent") \
    >"$scratch/$agent/install.txt"
  grep -q "configured (" "$scratch/$agent/install.txt" || {
    echo "cairn hook status does not see $agent's hooks: $scratch/$agent/install.txt" >&2
    return 1
  }
}

run_claude_code() {
  local project="$scratch/claude-code/project" home="$scratch/claude-code/home" cmd
  cmd="$(hook_command claude-code)"
  new_project "$project"
  mkdir -p "$project/.claude" "$scratch/claude-code/tmp"
  if [ -z "$capture" ]; then install_hooks claude-code "$project" || return 1; else
  python3 - "$cmd" >"$project/.claude/settings.json" <<'EOF'
import json, sys
hook = [{"type": "command", "command": sys.argv[1]}]
events = ["SessionStart", "UserPromptSubmit", "PostToolUse", "PostToolUseFailure",
          "PreCompact", "Stop", "SessionEnd"]
tools = {"PostToolUse", "PostToolUseFailure"}
print(json.dumps({"hooks": {e: [dict({"matcher": "*"} if e in tools else {}, hooks=hook)]
                            for e in events}}, indent=2))
EOF
  fi
  commit_project "$project"
  (cd "$project" && $(agent_env claude-code) \
    ANTHROPIC_BASE_URL="$mock/anthropic" ANTHROPIC_API_KEY=sk-ant-mock-key \
    DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
    DISABLE_ERROR_REPORTING=1 DISABLE_COST_WARNINGS=1 \
    claude -p "$PROMPT" --model claude-sonnet-4-5 --output-format json \
      --permission-mode acceptEdits --allowedTools "Read Write Edit Bash" \
    ) >"$scratch/claude-code/out.json" 2>"$scratch/claude-code/err.txt" || {
      echo "claude exited $?; see $scratch/claude-code/{out.json,err.txt}" >&2; return 1; }
  [ "$compact" = 1 ] || return 0
  # Claude Code compacts on its own only near its context window; `/compact` in a second
  # headless run of the same session fires PreCompact (manual) instead.
  (cd "$project" && $(agent_env claude-code) \
    ANTHROPIC_BASE_URL="$mock/anthropic" ANTHROPIC_API_KEY=sk-ant-mock-key \
    DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
    DISABLE_ERROR_REPORTING=1 DISABLE_COST_WARNINGS=1 \
    claude -p /compact --resume "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["session_id"])' "$scratch/claude-code/out.json")" --model claude-sonnet-4-5 --output-format json \
    ) >"$scratch/claude-code/compact.json" 2>>"$scratch/claude-code/err.txt" || {
      echo "claude /compact exited $?; see $scratch/claude-code/compact.json" >&2; return 1; }
}

run_codex() {
  local project="$scratch/codex/project" home="$scratch/codex/home" cmd
  cmd="$(hook_command codex)"
  new_project "$project"
  mkdir -p "$home/.codex" "$scratch/codex/tmp"
  python3 - "$cmd" "$mock/openai/v1" "$project" "$compact" "$capture" >"$home/.codex/config.toml" <<'EOF'
import json, sys
cmd, base_url, project, compact, capture = sys.argv[1:]
q = json.dumps  # a TOML basic string is a JSON string
print(f"""model = "gpt-5.5"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
notify = {json.dumps(cmd.split())}
{"model_auto_compact_token_limit = 100000" if compact == "1" else ""}

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.mock]
name = "mock"
base_url = {q(base_url)}
wire_api = "responses"
env_key = "MOCK_API_KEY"

[projects.{q(project)}]
trust_level = "trusted"
""")
for event in ["SessionStart", "UserPromptSubmit", "PostToolUse", "PreCompact", "Stop"] if capture else []:
    print(f"[[hooks.{event}]]\n[[hooks.{event}.hooks]]\ntype = \"command\"\ncommand = {q(cmd)}\n")
EOF
  [ -n "$capture" ] || install_hooks codex "$project" --user || return 1
  commit_project "$project"
  (cd "$project" && $(agent_env codex) CODEX_HOME="$home/.codex" MOCK_API_KEY=mock-key \
    codex exec --dangerously-bypass-hook-trust --skip-git-repo-check --json "$PROMPT" \
    ) >"$scratch/codex/out.jsonl" 2>"$scratch/codex/err.txt" </dev/null || {
      echo "codex exited $?; see $scratch/codex/{out.jsonl,err.txt}" >&2; return 1; }
}

run_gemini() {
  local project="$scratch/gemini/project" home="$scratch/gemini/home" cmd
  cmd="$(hook_command gemini)"
  new_project "$project"
  mkdir -p "$project/.gemini" "$home/.gemini" "$scratch/gemini/tmp"
  if [ -z "$capture" ]; then install_hooks gemini "$project" || return 1; else
  python3 - "$cmd" >"$project/.gemini/settings.json" <<'EOF'
import json, sys
hook = [{"name": "cairn", "type": "command", "command": sys.argv[1]}]
events = ["SessionStart", "BeforeAgent", "AfterTool", "AfterAgent", "PreCompress", "SessionEnd"]
print(json.dumps({"hooks": {e: [dict({"matcher": "*"} if e == "AfterTool" else {}, hooks=hook)]
                            for e in events}}, indent=2))
EOF
  fi
  commit_project "$project"
  cat >"$home/.gemini/settings.json" <<'EOF'
{
  "security": {"auth": {"selectedType": "gemini-api-key"}},
  "privacy": {"usageStatisticsEnabled": false},
  "telemetry": {"enabled": false},
  "general": {"disableAutoUpdate": true, "disableUpdateNag": true}
}
EOF
  printf '{"%s": "TRUST_FOLDER"}\n' "$project" >"$home/.gemini/trustedFolders.json"
  (cd "$project" && $(agent_env gemini) GEMINI_API_KEY=mock-key \
    GOOGLE_GEMINI_BASE_URL="$mock/gemini" \
    gemini -p "$PROMPT" -m gemini-2.5-flash --approval-mode yolo --output-format json \
    ) >"$scratch/gemini/out.json" 2>"$scratch/gemini/err.txt" </dev/null || {
      echo "gemini exited $?; see $scratch/gemini/{out.json,err.txt}" >&2; return 1; }
}

failed=()
for agent in "${agents[@]}"; do
  say "$agent ($(cd "$scratch/$agent/project" && $(agent_env "$agent") \
    "$(case $agent in claude-code) echo claude;; *) echo "$agent";; esac)" --version 2>/dev/null | head -1))"
  if "run_${agent//-/_}" && python3 "$here/e2e/check_session.py" "$agent" \
      "$scratch/$agent/project" "$cairn"; then
    echo "PASS $agent" >&2
  else
    echo "FAIL $agent (scratch: $scratch/$agent)" >&2
    failed+=("$agent")
  fi
done

if [ "$update" = 1 ]; then
  say "fixtures from $capture"
  for agent in "${agents[@]}"; do
    python3 "$here/e2e/normalize_fixtures.py" "$capture/$agent" "$repo/fixtures/hooks/$agent" \
      --workspace "$scratch/$agent/project" --home "$scratch/$agent/home"
  done
fi
echo "scratch: $scratch" >&2
[ ${#failed[@]} -eq 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
