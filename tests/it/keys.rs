//! The providers' API keys stay in cairn: a command the model runs, as the same
//! (unprivileged) user, finds them neither in its own environment nor through cairn's
//! `/proc` entries, while unsandboxed it can read those of another process of that user;
//! sandboxed, it sees no process outside its sandbox at all.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::mock_model::{self, Reply};
use crate::support::{TestRepo, unprivileged};

/// Every key the test sets starts with this; nothing else in the run holds it.
const KEY: &str = "cairn-test-key-5b1f0c9e";

/// Reports, one fact per line, what a command can learn about the keys: through its parent
/// (cairn), its own environment, and every process's environment it can read.
const PROBE: &str = r#"key=cairn-test-key-5b1f0c9e
echo "ppid $PPID"
for f in environ cmdline; do
  if tr '\0' '\n' < /proc/$PPID/$f > /dev/null 2>&1; then
    echo "parent-$f readable $(tr '\0' '\n' < /proc/$PPID/$f | grep -c $key)"
  else
    echo "parent-$f unreadable"
  fi
done
if true < /proc/$PPID/mem 2> /dev/null; then echo "parent-mem readable"; else echo "parent-mem unreadable"; fi
echo "own-env $(env | grep -c $key)"
for f in /proc/[0-9]*/environ; do
  if tr '\0' '\n' < $f 2> /dev/null | grep -q $key; then echo "hit $f"; fi
done
"#;

/// What the probe reported, run through `cairn run --sandbox SANDBOX` as an unprivileged
/// user next to a control process of that user holding a key: (cairn's pid, the
/// control's pid, the probe's result).
async fn probe_through_cairn(sandbox: &str) -> (u32, u32, String) {
    let repo = TestRepo::new();
    let model = mock_model::start([
        Reply::chat_tool_calls(&[("c1", "shell", json!({"command": PROBE}))]),
        Reply::chat_text("probed"),
    ])
    .await;
    std::fs::write(
        repo.home.join("cairn-config.toml"),
        format!(
            "model = \"mock/scripted\"\n[memory]\nsummarize = false\n[provider.mock]\n\
             kind = \"openai-chat\"\nbase_url = \"{}\"\napi_key_env = \"CAIRN_TEST_KEY\"\n",
            model.base_url()
        ),
    )
    .unwrap();
    unprivileged::prepare(&repo);
    // The control: a process of the same user holding the key, which the probe must find
    // unsandboxed, so that "no key found" means hidden, not unreadable to the probe anyway.
    let mut control = unprivileged::as_user(
        Command::new("sleep").arg("60").env("CAIRN_TEST_KEY", format!("{KEY}-control")),
    )
    .spawn()
    .expect("sleep starts");

    let mut command =
        repo.command_in(&repo.root, &["run", "probe", "--approval", "auto", "--sandbox", sandbox]);
    command
        .env("CAIRN_TEST_KEY", format!("{KEY}-custom"))
        .env("ANTHROPIC_API_KEY", format!("{KEY}-anthropic"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    unprivileged::as_user(&mut command);
    let (cairn_pid, out) = tokio::task::spawn_blocking(move || {
        let child = command.spawn().expect("cairn starts");
        (child.id(), child.wait_with_output().expect("cairn runs"))
    })
    .await
    .unwrap();
    let control_pid = control.id();
    control.kill().unwrap();
    control.wait().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    // cairn itself still has the key it took out of its environment.
    assert_eq!(requests[0].headers["authorization"], format!("Bearer {KEY}-custom"));
    let result = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool" && m["tool_call_id"] == "c1")
        .and_then(|m| m["content"].as_str())
        .expect("the probe's result")
        .to_owned();
    (cairn_pid, control_pid, result)
}

fn hits(result: &str) -> Vec<&str> {
    result.lines().filter_map(|fact| fact.trim().strip_prefix("hit ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_finds_no_key_in_its_environment_or_through_cairn() {
    let (cairn_pid, control_pid, result) = probe_through_cairn("off").await;
    let facts: Vec<&str> = result.lines().map(str::trim).collect();
    let has = |fact: &str| facts.contains(&fact);
    assert!(has(&format!("ppid {cairn_pid}")), "the probe's parent is cairn:\n{result}");
    assert!(has("parent-environ unreadable"), "{result}");
    assert!(has("parent-mem unreadable"), "{result}");
    assert!(
        has("parent-cmdline readable 0") || has("parent-cmdline unreadable"),
        "no key on cairn's command line:\n{result}"
    );
    assert!(has("own-env 0"), "{result}");
    assert_eq!(
        hits(&result),
        [format!("/proc/{control_pid}/environ")],
        "only the control process shows a key:\n{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_command_sees_no_process_outside_and_no_key_anywhere() {
    let (cairn_pid, _, result) = probe_through_cairn("workspace-write").await;
    let facts: Vec<&str> = result.lines().map(str::trim).collect();
    assert!(facts.contains(&"own-env 0"), "{result}");
    assert!(hits(&result).is_empty(), "not even the control process is visible:\n{result}");
    // Its parent is the sandbox's own init, not cairn, whose /proc entry does not exist.
    assert!(!facts.contains(&format!("ppid {cairn_pid}").as_str()), "{result}");
    assert!(facts.contains(&"ppid 1"), "{result}");
}
