//! One test per fixed bug, named after the bug as a user met it (ripgrep's
//! `tests/regression.rs`): when a bug is fixed, its test goes here, so the list reads as the
//! history of what went wrong and stays fixed.

use crate::durability;
use crate::support::mock_model::{self, Reply};
use crate::support::{TestRepo, age};

/// `cairn run` titled a session with its raw prompt, so a key pasted into the prompt was
/// stored in `session.toml` (and pushed with it) though the transcript redacted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_title_kept_the_raw_prompt_with_its_secrets() {
    let repo = TestRepo::new();
    let model = mock_model::start([Reply::chat_text("Done.")]).await;
    repo.use_model(&model.base_url());
    let key = format!("sk-ant-{}", "a1B2c3D4".repeat(4));
    let prompt = format!("use  {key} for the\nrelease script");
    let out = crate::support::cairn(&repo, &["run", &prompt, "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let session = crate::support::session_of(&out);
    let toml =
        repo.git(&["show", &format!("{}:.cairn/session.toml", TestRepo::session_ref(&session))]);
    assert!(!toml.contains(&key), "the key is in session.toml: {toml}");
    assert!(toml.contains("title = \"use [redacted Anthropic API key] for the\""), "{toml}");
}

/// `git gc --prune=now` between two checkpoints deleted a blob that the stat cache still
/// named, and the next step recorded a tree naming the missing object.
#[test]
fn git_gc_prune_between_checkpoints_left_a_step_naming_a_missing_object() {
    let repo = TestRepo::new();
    repo.write("keep.txt", "never changes\n");
    repo.write("deep/er/still.txt", "never changes either\n");
    repo.write("change.txt", "version 0\n");
    for path in ["keep.txt", "deep/er/still.txt", "change.txt", "deep/er", "deep", "."] {
        age(&repo.path(path));
    }
    let (_, _, first) = repo.checkpoint(&[]);
    let kept = repo.git(&["rev-parse", &format!("{first}:keep.txt")]);

    let maintenance: [&[&str]; 4] = [
        &["gc", "--prune=now", "--quiet"],
        &["gc", "--prune=now", "--aggressive", "--quiet"],
        &["repack", "-a", "-d", "-q"],
        &["gc", "--prune=now", "--quiet"],
    ];
    for (round, command) in maintenance.iter().enumerate() {
        let content = format!("version {}\n", round + 1);
        repo.write("change.txt", &content);
        age(&repo.path("change.txt"));
        // A snapshot no step records: its blob is unreachable, yet the stat cache names it.
        repo.ok(&["diff", "--stat"]);
        let unreferenced = repo.git(&["hash-object", "change.txt"]);
        repo.git(command);
        // Each of them deletes it (`repack -a -d` drops what no ref reaches).
        assert!(!durability::blob_exists(&repo, unreferenced.trim()), "round {round}: {command:?}");

        let (_, _, commit) = repo.checkpoint(&["-m", &format!("round {round}")]);
        assert_eq!(repo.git(&["show", &format!("{commit}:change.txt")]), content);
        assert_eq!(repo.git(&["rev-parse", &format!("{commit}:keep.txt")]), kept);
        durability::assert_every_step_readable(&repo);
    }
    // And once more with nothing changed, after a last prune: every id comes from the cache.
    repo.git(&["gc", "--prune=now", "--quiet"]);
    repo.checkpoint(&["-m", "unchanged"]);
    assert!(durability::assert_every_step_readable(&repo) > 0);
}

/// llama.cpp's `/v1/responses` ends a response cut at `max_output_tokens` with
/// `response.completed` (`status: "completed"`), not `response.incomplete`, so a rambling
/// model stopped at `[limits] turn_output_tokens` ended the turn as done, exit 0, with
/// no notice and the text cut mid-sentence. Replayed from the real capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_llamacpp_responses_stream_cut_at_the_limit_ended_the_turn_as_done() {
    let cut =
        || Reply::sse(mock_model::fixture("captured/openai-responses", "llamacpp_cut_completed"));
    let settings = [
        // The turn's limit asks for 48 tokens.
        (
            "[limits]\nturn_output_tokens = 48\n",
            "",
            "turn-output-tokens",
            "turn_output_tokens = 48",
        ),
        // The provider's own limit is 48.
        ("", "max_output_tokens = 48\n", "output-limit", "raise `max_output_tokens`"),
    ];
    for (limits, provider, reason, notice) in settings {
        let repo = TestRepo::new();
        let model = mock_model::start([cut()]).await;
        let config = format!(
            "model = \"mock/scripted\"\n[memory]\nsummarize = false\n{limits}\n\
             [provider.mock]\nkind = \"openai-responses\"\nbase_url = \"{}\"\n{provider}",
            model.base_url()
        );
        std::fs::write(repo.home.join("cairn-config.toml"), config).unwrap();
        let out = crate::support::cairn(&repo, &["run", "write a long story", "--json"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{reason}: {stderr}");
        assert_eq!(model.requests()[0].body["max_output_tokens"], 48);
        let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON event"))
            .collect();
        let said = events.iter().any(|event| {
            event["type"] == "notice" && event["message"].as_str().unwrap().contains(notice)
        });
        assert!(said, "{reason}: {events:?}");
        assert_eq!(events.last().unwrap()["reason"], reason);
        let text: String = events
            .iter()
            .filter(|event| event["type"] == "text_delta")
            .map(|event| event["text"].as_str().unwrap().to_owned())
            .collect();
        assert!(text.ends_with("was born with the ability"), "{text}");
    }
}
