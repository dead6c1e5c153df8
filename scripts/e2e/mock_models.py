#!/usr/bin/env python3
"""A scripted model server for scripts/e2e-agents.sh: Anthropic, OpenAI and Gemini on one port.

Python 3 standard library only. It plays one scripted coding turn for whichever agent asks,
deciding each answer from the conversation the request carries (how many tool results it
holds), so a retry or an extra side request (a title, a token count) does not derail it:

1. write a new file, 2. (Claude Code only: read the file it will edit, as its Edit tool
requires), 3. edit an existing file, 4. run a shell command that succeeds, 5. run one that
exits non-zero, 6. answer with text.

Routes (the agent's base URL is given in brackets):

- ``POST /anthropic/v1/messages`` [``ANTHROPIC_BASE_URL=http://127.0.0.1:PORT/anthropic``]:
  the Messages API, SSE when ``"stream": true`` (``message_start``, ``content_block_*`` with
  ``text_delta`` / ``input_json_delta``, ``message_delta``, ``message_stop``), JSON
  otherwise; ``/v1/messages/count_tokens`` answers a fixed count.
- ``POST /openai/v1/responses`` [a Codex model provider with
  ``base_url = "http://127.0.0.1:PORT/openai/v1"``, ``wire_api = "responses"``]: the
  Responses API as SSE (``response.created``, ``response.output_item.added/done`` with
  ``message``, ``function_call`` or ``custom_tool_call`` items, ``response.completed``).
  ``/openai/v1/chat/completions`` speaks Chat Completions streaming (``tool_calls`` deltas,
  ``data: [DONE]``) for clients configured with ``wire_api = "chat"``.
- ``POST /gemini/v1beta/models/<model>:streamGenerateContent?alt=sse``
  [``GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT/gemini``]: the Gemini API as SSE
  (``data: {"candidates": [...functionCall...], "usageMetadata": ...}``);
  ``:generateContent`` (side questions, answered as JSON) and ``:countTokens`` too.

``--plan FILE`` replaces that turn with another, for every agent: a JSON list of steps,
each ``["replace", PATH, [OLD, NEW]]`` (an edit replacing the lines OLD with NEW; Codex
only), ``["edit", PATH, [OLD, NEW]]``, ``["write", PATH, CONTENT]``, ``["shell", COMMAND,
null]`` or ``["answer", TEXT, null]``. ``benches/agent.rs`` drives Codex with one, and
with ``--timings FILE``, where each POST appends ``{"path", "received", "replied"}``
(``time.monotonic()`` seconds: the whole request read, the last byte of the answer sent).

The workspace each agent works in is given with ``--workspace AGENT=DIR`` (AGENT one of
claude-code, codex, gemini) so tools that want absolute paths get them. Every request is
appended to ``--log`` (JSON Lines: method, path, body) for debugging.

Usage: mock_models.py --port-file FILE [--port N] [--log FILE] [--plan FILE]
                      [--timings FILE] --workspace codex=/tmp/p ...
It prints nothing; it writes the port it listens on to --port-file once it is ready.
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The turn every agent is asked to do, and what the model does for it.
PROMPT = "Add a greet function in src/greet.rs and mention it in the README"
GREET = 'pub fn greet(name: &str) -> String {\n    format!("Hello, {name}!")\n}\n'
README_OLD = "hello\n"
README_NEW = "hello\nSee greet() in src/greet.rs.\n"
OK_COMMAND = "mkdir -p docs && echo 'greet(name) says hello' > docs/greet.md"
FAILING_COMMAND = "cat docs/missing.md"
ANSWER = (
    "I added greet() in src/greet.rs, documented it in docs/greet.md and mentioned it in "
    "the README."
)
# What the mock answers when asked to summarise the conversation (a compaction); the marker
# tells later requests that the work is done.
SUMMARY = "MOCK-SUMMARY: greet() was added, documented and tested; only the answer is left."

WORKSPACES = {}
PLAN = None
LOG = None
TIMINGS = None
LOG_LOCK = threading.Lock()


def log(entry):
    if LOG is None:
        return
    with LOG_LOCK:
        with open(LOG, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")


def ws(agent, rel):
    root = WORKSPACES.get(agent)
    return f"{root}/{rel}" if root else rel


def steps(agent):
    """The scripted turn for `agent`: a list of (kind, what, detail)."""
    if PLAN is not None:
        return PLAN
    plan = [("write", "src/greet.rs", GREET)]
    if agent == "claude-code":
        plan.append(("read", "README.md", None))
    plan += [
        ("edit", "README.md", (README_OLD, README_NEW)),
        ("shell", OK_COMMAND, None),
        ("shell", FAILING_COMMAND, None),
        ("answer", ANSWER, None),
    ]
    return plan


def sse(events):
    """`events` as an SSE body: (event name or None, JSON data) pairs."""
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        text = data if isinstance(data, str) else json.dumps(data)
        out.append(f"data: {text}\n\n")
    return "".join(out).encode()


# ---------------------------------------------------------------- Anthropic (Claude Code)


def anthropic_text(content):
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") == "tool_result":
            parts.append(anthropic_text(block.get("content")))
    return "\n".join(parts)


def anthropic_reply(body):
    """The content blocks and stop reason to answer an Anthropic request with."""
    messages = body.get("messages") or []
    all_text = "\n".join(anthropic_text(m.get("content")) for m in messages)
    last = anthropic_text(messages[-1].get("content")) if messages else ""
    tools = {t.get("name") for t in body.get("tools") or []}
    if re.search(r"create a detailed summary of the conversation", last, re.I):
        return [{"type": "text", "text": SUMMARY}], "end_turn"
    if "Write" not in tools:
        # A side request (a title, a topic, a quota check): a short text will do.
        return [{"type": "text", "text": "Greet function"}], "end_turn"
    if SUMMARY in all_text:
        return [{"type": "text", "text": ANSWER}], "end_turn"
    done = sum(
        1
        for m in messages
        if m.get("role") == "user" and isinstance(m.get("content"), list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    )
    plan = steps("claude-code")
    kind, what, extra = plan[min(done, len(plan) - 1)]
    call_id = f"toolu_mock{done + 1:02d}"
    if kind == "write":
        call = ("Write", {"file_path": ws("claude-code", what), "content": extra})
    elif kind == "read":
        call = ("Read", {"file_path": ws("claude-code", what)})
    elif kind == "edit":
        call = (
            "Edit",
            {"file_path": ws("claude-code", what), "old_string": extra[0], "new_string": extra[1]},
        )
    elif kind == "shell":
        call = ("Bash", {"command": what, "description": "Run " + what.split()[0]})
    else:
        return [{"type": "text", "text": what}], "end_turn"
    name, args = call
    return [{"type": "tool_use", "id": call_id, "name": name, "input": args}], "tool_use"


def anthropic(handler, body):
    blocks, stop = anthropic_reply(body)
    model = body.get("model", "claude-mock")
    # A nearly full context (--compact) makes Claude Code compact (auto) before its next
    # request: reported once, with the call to the failing command.
    failing = blocks[0].get("input", {}).get("command") == FAILING_COMMAND
    input_tokens = 190_000 if handler.server.compact and failing else 50
    usage = {"input_tokens": input_tokens, "output_tokens": 20, "cache_read_input_tokens": 0,
             "cache_creation_input_tokens": 0}
    message = {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
               "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    if not body.get("stream"):
        message.update(content=blocks, stop_reason=stop)
        return handler.send(200, json.dumps(message).encode(), "application/json")
    events = [("message_start", {"type": "message_start", "message": message})]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            text = block["text"]
            for piece in (text[: len(text) // 2], text[len(text) // 2:]):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "text_delta", "text": piece}}))
        else:
            start = dict(block, input={})
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": start}))
            args = json.dumps(block["input"])
            for piece in (args[: len(args) // 2], args[len(args) // 2:]):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "input_json_delta",
                                                                 "partial_json": piece}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": dict(usage)}))
    events.append(("message_stop", {"type": "message_stop"}))
    handler.send(200, sse(events), "text/event-stream")


# ---------------------------------------------------------------- OpenAI (Codex)


def openai_plan(body, items, tool_defs):
    """The next step for Codex: ("call", item) or ("text", text)."""
    text = json.dumps(items)
    if SUMMARY in text:
        return "text", ANSWER
    last_user = ""
    for item in items:
        if item.get("role") == "user":
            last_user = json.dumps(item.get("content"))
    if "summary" in last_user.lower() and "CONTEXT CHECKPOINT" in last_user.upper():
        return "text", SUMMARY
    done = sum(1 for item in items if str(item.get("type", "")).endswith("_call_output"))
    plan = steps("codex")
    kind, what, extra = plan[min(done, len(plan) - 1)]
    call_id = f"call_mock{done + 1:02d}"
    if kind in ("write", "edit", "replace"):
        if kind == "replace":
            old, new = extra
            lines = [f"-{line}" for line in old.splitlines()]
            lines += [f"+{line}" for line in new.splitlines()]
            patch = (f"*** Begin Patch\n*** Update File: {what}\n@@\n" + "\n".join(lines)
                     + "\n*** End Patch\n")
        elif kind == "write":
            patch = f"*** Begin Patch\n*** Add File: {what}\n" + "".join(
                f"+{line}\n" for line in extra.splitlines()) + "*** End Patch\n"
        else:
            old, new = extra
            lines = [f" {line}" for line in old.splitlines()]
            lines += [f"+{line}" for line in new.splitlines()[len(old.splitlines()):]]
            patch = (f"*** Begin Patch\n*** Update File: {what}\n@@\n" + "\n".join(lines)
                     + "\n*** End Patch\n")
        spec = tool_defs.get("apply_patch")
        if spec and spec.get("type") == "custom":
            return "call", {"type": "custom_tool_call", "id": f"ctc_{call_id}", "call_id": call_id,
                            "name": "apply_patch", "input": patch, "status": "completed"}
        if spec:
            return "call", {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id,
                            "name": "apply_patch", "arguments": json.dumps({"input": patch}),
                            "status": "completed"}
        kind, what = "shell", "apply_patch <<'EOF'\n" + patch + "EOF\n"
    if kind == "shell":
        if "exec_command" in tool_defs:
            name, args = "exec_command", {"cmd": what}
        elif "shell_command" in tool_defs:
            name, args = "shell_command", {"command": what}
        else:
            name, args = "shell", {"command": ["bash", "-lc", what]}
        return "call", {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id,
                        "name": name, "arguments": json.dumps(args), "status": "completed"}
    return "text", what


def openai_responses(handler, body):
    items = body.get("input") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    tool_defs = {}
    for tool in body.get("tools") or []:
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if name:
            tool_defs[name] = tool
    if "CONTEXT CHECKPOINT COMPACTION" in json.dumps(items[-1:]):
        kind, out = "text", SUMMARY
    elif not tool_defs:
        kind, out = "text", "Greet function"
    else:
        kind, out = openai_plan(body, items, tool_defs)
    rid = "resp_mock"
    events = [("response.created", {"type": "response.created",
                                    "response": {"id": rid, "object": "response",
                                                 "status": "in_progress", "output": []}})]
    if kind == "text":
        item = {"type": "message", "id": "msg_mock", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": out, "annotations": []}]}
        events.append(("response.output_item.added", {
            "type": "response.output_item.added", "output_index": 0,
            "item": dict(item, content=[], status="in_progress")}))
        events.append(("response.output_text.delta", {
            "type": "response.output_text.delta", "item_id": "msg_mock", "output_index": 0,
            "content_index": 0, "delta": out}))
    else:
        item = out
        events.append(("response.output_item.added", {
            "type": "response.output_item.added", "output_index": 0, "item": item}))
    events.append(("response.output_item.done", {
        "type": "response.output_item.done", "output_index": 0, "item": item}))
    # --compact: a nearly full context once, with the call to the failing command (Codex is
    # configured with a small model_auto_compact_token_limit).
    failing = kind == "call" and FAILING_COMMAND in json.dumps(out)
    tokens = 900_000 if handler.server.compact and failing else 50
    usage = {"input_tokens": tokens, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": tokens + 20}
    events.append(("response.completed", {"type": "response.completed",
                                          "response": {"id": rid, "object": "response",
                                                       "status": "completed",
                                                       "output": [item], "usage": usage}}))
    handler.send(200, sse(events), "text/event-stream")


def openai_chat(handler, body):
    messages = body.get("messages") or []
    tool_defs = {(t.get("function") or {}).get("name"): t for t in body.get("tools") or []}
    items = []
    for m in messages:
        if m.get("role") == "tool":
            items.append({"type": "function_call_output"})
        else:
            items.append({"role": m.get("role"), "content": m.get("content")})
    kind, out = openai_plan(body, items, {k: {"type": "function"} for k in tool_defs if k})
    chunk = lambda delta, finish=None: {  # noqa: E731
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": "mock",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if kind == "text":
        events = [(None, chunk({"role": "assistant", "content": out})), (None, chunk({}, "stop"))]
    else:
        args = out.get("arguments") or json.dumps({"input": out.get("input")})
        call = {"index": 0, "id": out["call_id"], "type": "function",
                "function": {"name": out["name"], "arguments": args}}
        events = [(None, chunk({"role": "assistant", "tool_calls": [call]})),
                  (None, chunk({}, "tool_calls"))]
    events.append((None, "[DONE]"))
    handler.send(200, sse(events), "text/event-stream")


# ---------------------------------------------------------------- Gemini


def gemini_reply(body):
    contents = body.get("contents") or []
    text = json.dumps(contents)
    tools = set()
    for tool in body.get("tools") or []:
        for decl in tool.get("functionDeclarations") or []:
            tools.add(decl.get("name"))
    last = json.dumps(contents[-1:]) if contents else ""
    if "state_snapshot" in last and "functionResponse" not in last:
        return [{"text": f"<state_snapshot>{SUMMARY}</state_snapshot>"}]
    if "write_file" not in tools:
        config = body.get("generationConfig") or {}
        if config.get("responseMimeType") == "application/json" or config.get("responseJsonSchema") \
                or config.get("responseSchema"):
            return [{"text": json.dumps({"reasoning": "The model answered; the user speaks next.",
                                         "next_speaker": "user", "model_choice": "flash",
                                         "complexity_reasoning": "simple",
                                         "complexity_score": 1})}]
        return [{"text": "Greet function"}]
    if SUMMARY in text:
        return [{"text": ANSWER}]
    done = text.count('"functionResponse"')
    plan = steps("gemini")
    kind, what, extra = plan[min(done, len(plan) - 1)]
    if kind == "write":
        call = ("write_file", {"file_path": ws("gemini", what), "content": extra})
    elif kind == "edit":
        call = ("replace", {"file_path": ws("gemini", what), "old_string": extra[0],
                            "new_string": extra[1], "instruction": "Mention greet() in the README"})
    elif kind == "shell":
        call = ("run_shell_command", {"command": what, "description": "Run " + what.split()[0]})
    else:
        return [{"text": what}]
    return [{"functionCall": {"name": call[0], "args": call[1]}}]


def gemini(handler, body, method):
    if method == "countTokens":
        return handler.send(200, json.dumps({"totalTokens": 100}).encode(), "application/json")
    parts = gemini_reply(body)
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120}
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    answer = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-mock"}
    if method == "generateContent":
        return handler.send(200, json.dumps(answer).encode(), "application/json")
    if "text" in parts[0] and len(parts[0]["text"]) > 8:
        text = parts[0]["text"]
        first = {"candidates": [{"content": {"role": "model",
                                             "parts": [{"text": text[: len(text) // 2]}]},
                                 "index": 0}], "modelVersion": "gemini-mock"}
        candidate["content"]["parts"] = [{"text": text[len(text) // 2:]}]
        events = [(None, first), (None, answer)]
    else:
        events = [(None, answer)]
    handler.send(200, sse(events), "text/event-stream")


# ---------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        if content_type == "text/event-stream":
            self.send_header("cache-control", "no-cache")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self):
        log({"method": "GET", "path": self.path})
        if self.path.startswith("/openai/v1/models"):
            return self.send(200, json.dumps({"object": "list", "data": [], "models": []}).encode(),
                             "application/json")
        self.send(404, b'{"error": {"message": "not found"}}', "application/json")

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        received = time.monotonic()
        try:
            self.answer_post(raw)
        finally:
            if TIMINGS is not None:
                entry = {"path": self.path, "received": received, "replied": time.monotonic()}
                with LOG_LOCK:
                    with open(TIMINGS, "a", encoding="utf-8") as out:
                        out.write(json.dumps(entry) + "\n")

    def answer_post(self, raw):
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        log({"method": "POST", "path": self.path, "body": body})
        path = self.path.split("?")[0]
        try:
            if path.startswith("/anthropic/") and path.endswith("/count_tokens"):
                return self.send(200, b'{"input_tokens": 100}', "application/json")
            if path.startswith("/anthropic/") and path.endswith("/messages"):
                return anthropic(self, body)
            if path.startswith("/openai/") and path.endswith("/responses/compact"):
                summary = {"type": "message", "role": "user",
                           "content": [{"type": "input_text", "text": SUMMARY}]}
                return self.send(200, json.dumps({"output": [summary]}).encode(),
                                 "application/json")
            if path.startswith("/openai/") and path.endswith("/responses"):
                return openai_responses(self, body)
            if path.startswith("/openai/") and path.endswith("/chat/completions"):
                return openai_chat(self, body)
            if path.startswith("/gemini/"):
                method = path.rsplit(":", 1)[-1]
                return gemini(self, body, method)
        except Exception as err:  # a bug here should show, not hang the agent
            log({"error": repr(err), "path": self.path})
            return self.send(500, json.dumps({"error": {"message": repr(err)}}).encode(),
                             "application/json")
        self.send(404, b'{"error": {"message": "no such route"}}', "application/json")


def main():
    global LOG, PLAN, TIMINGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log")
    parser.add_argument("--workspace", action="append", default=[], metavar="AGENT=DIR")
    parser.add_argument("--plan", help="a JSON file holding the turn to play instead")
    parser.add_argument("--timings", help="append when each POST arrived and was answered")
    parser.add_argument("--compact", action="store_true",
                        help="report a nearly full context once, so agents compact (auto)")
    args = parser.parse_args()
    LOG, TIMINGS = args.log, args.timings
    if args.plan:
        with open(args.plan, encoding="utf-8") as plan:
            PLAN = [tuple(step) for step in json.load(plan)]
    for spec in args.workspace:
        agent, _, root = spec.partition("=")
        WORKSPACES[agent] = root.rstrip("/")
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.compact = args.compact
    with open(args.port_file, "w", encoding="utf-8") as out:
        out.write(str(server.server_address[1]))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
