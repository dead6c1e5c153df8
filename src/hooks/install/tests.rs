use std::path::Path;

use serde_json::{Value, json};

use super::*;

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

fn commands(settings: &Value, event: &str) -> Vec<String> {
    settings["hooks"][event]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["hooks"].as_array().unwrap())
        .map(|handler| handler["command"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_new_settings_file_gets_every_recommended_hook_once() {
    for agent in [AgentKind::ClaudeCode, AgentKind::Gemini] {
        let change = install(agent, None).unwrap();
        let events: Vec<&str> = recommended(agent).iter().map(|hook| hook.event).collect();
        assert_eq!(change.events, events);
        let settings = parsed(&change.text);
        for hook in recommended(agent) {
            assert_eq!(commands(&settings, hook.event), [command(agent)], "{}", hook.event);
            let group = &settings["hooks"][hook.event][0];
            assert_eq!(group["matcher"].as_str(), hook.matcher);
            assert_eq!(group["hooks"][0]["name"].as_str(), hook.name);
        }
        assert!(find(agent, &change.text).unwrap().missing(agent).is_empty());
        // Installing again changes nothing.
        let again = install(agent, Some(&change.text)).unwrap();
        assert_eq!((again.text.as_str(), again.events.len()), (change.text.as_str(), 0));
        // Taking it out leaves an empty object.
        assert_eq!(parsed(&uninstall(agent, &change.text).unwrap().text), json!({}));
    }
}

const CLAUDE_SETTINGS: &str = r#"{
    "model": "opus",
    "permissions": {
        "allow": [
            "Bash(npm test)"
        ]
    },
    "hooks": {
        "PostToolUse": [
            {
                "matcher": "Write",
                "hooks": [
                    {
                        "type": "command",
                        "command": "prettier --write"
                    }
                ]
            }
        ]
    },
    "env": {
        "Z": "1",
        "A": "2"
    }
}
"#;

#[test]
fn the_users_settings_order_and_indentation_survive_install_and_uninstall() {
    let agent = AgentKind::ClaudeCode;
    let change = install(agent, Some(CLAUDE_SETTINGS)).unwrap();
    assert_eq!(change.events.len(), 5);
    let keys: Vec<&str> = change
        .text
        .lines()
        .filter(|line| line.starts_with("    \"") && !line.starts_with("     "))
        .map(|line| line.trim().split('"').nth(1).unwrap())
        .collect();
    assert_eq!(keys, ["model", "permissions", "hooks", "env"], "{}", change.text);
    assert!(change.text.contains("\n        \"A\": \"2\"\n"), "four spaces kept: {}", change.text);
    assert!(change.text.find("\"Z\"").unwrap() < change.text.find("\"A\"").unwrap());
    let settings = parsed(&change.text);
    assert_eq!(commands(&settings, "PostToolUse"), ["prettier --write", "cairn hook claude-code"]);
    assert_eq!(settings["permissions"], json!({"allow": ["Bash(npm test)"]}));

    let removed = uninstall(agent, &change.text).unwrap();
    assert_eq!(removed.events.len(), 5);
    assert_eq!(removed.text, CLAUDE_SETTINGS, "uninstall takes out exactly what install added");

    // JSON is written back pretty-printed: a file laid out otherwise keeps its meaning and
    // key order, not its line breaks.
    let compact = r#"{"z": [1, 2], "hooks": {"Notification": []}, "a": {"y": true, "b": null}}"#;
    let round_trip = uninstall(agent, &install(agent, Some(compact)).unwrap().text).unwrap();
    assert_eq!(parsed(&round_trip.text), parsed(compact));
    let order: Vec<usize> = ["\"z\"", "\"hooks\"", "\"a\"", "\"y\"", "\"b\""]
        .iter()
        .map(|key| round_trip.text.find(key).unwrap())
        .collect();
    assert!(order.is_sorted(), "{}", round_trip.text);
}

#[test]
fn a_cairn_hook_the_user_wrote_counts_and_is_left_alone() {
    let agent = AgentKind::ClaudeCode;
    let own = r#"{"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "/opt/cairn/bin/cairn hook claude-code --with-transcript"}]}]}}"#;
    let change = install(agent, Some(own)).unwrap();
    assert!(!change.events.contains(&"Stop"));
    let settings = parsed(&change.text);
    assert_eq!(
        commands(&settings, "Stop"),
        ["/opt/cairn/bin/cairn hook claude-code --with-transcript"]
    );
    let removed = uninstall(agent, &change.text).unwrap();
    assert_eq!(parsed(&removed.text), parsed(own));
    // Another agent's cairn hook, or a program merely named like it, is not cairn's.
    for other in ["cairn hook codex", "cairnx hook claude-code", "echo cairn hook claude-code"] {
        assert!(!is_cairn_command(other, "claude-code"), "{other}");
    }
}

#[test]
fn settings_in_a_shape_the_agent_would_not_read_are_refused_untouched() {
    let agent = AgentKind::Gemini;
    for (text, error) in [
        (r#"{"hooks": []}"#, "its `hooks` is not in the shape the agent reads"),
        (
            r#"{"hooks": {"AfterTool": {"x": 1}}}"#,
            "its `hooks.AfterTool` is not in the shape the agent reads",
        ),
        ("[1, 2]", "its `the top level` is not in the shape the agent reads"),
    ] {
        assert_eq!(install(agent, Some(text)).unwrap_err().to_string(), error, "{text}");
    }
    let commented = "{\n  // my settings\n  \"theme\": \"dark\"\n}\n";
    let err = install(agent, Some(commented)).unwrap_err().to_string();
    assert!(err.starts_with("it does not parse:") && err.contains("without comments"), "{err}");
    assert!(uninstall(agent, commented).is_err());
}

const CODEX_CONFIG: &str = r#"# my Codex settings
model = "gpt-5-codex"

[hooks]
# a hook of my own, inline
UserPromptSubmit = [{ hooks = [{ type = "command", command = "say hi" }] }]

[hooks.state."/home/u/.codex/config.toml:user_prompt_submit:0:0"]
trusted_hash = "sha256:abc"

[projects."/home/u/work"]
trust_level = "trusted"
"#;

#[test]
fn codex_config_keeps_comments_inline_hooks_and_review_state() {
    let agent = AgentKind::Codex;
    let change = install(agent, Some(CODEX_CONFIG)).unwrap();
    assert_eq!(change.events, ["UserPromptSubmit", "PostToolUse", "Stop"]);
    assert!(
        change.text.starts_with("# my Codex settings\nmodel = \"gpt-5-codex\"\n"),
        "{}",
        change.text
    );
    assert!(change.text.contains("# a hook of my own, inline"));
    let config: toml::Table = toml::from_str(&change.text).unwrap();
    let hooks = config["hooks"].as_table().unwrap();
    let prompt = hooks["UserPromptSubmit"].as_array().unwrap();
    assert_eq!(prompt.len(), 2, "the user's group and cairn's");
    assert_eq!(prompt[1]["hooks"][0]["command"].as_str(), Some("cairn hook codex"));
    assert_eq!(hooks["PostToolUse"][0]["matcher"].as_str(), Some("*"));
    assert_eq!(hooks["Stop"][0]["hooks"][0]["type"].as_str(), Some("command"));
    assert!(hooks["state"].as_table().unwrap().len() == 1);
    assert_eq!(config["projects"]["/home/u/work"]["trust_level"].as_str(), Some("trusted"));

    let found = find(agent, &change.text).unwrap();
    assert!(found.missing(agent).is_empty());
    assert!(found.handlers.contains(&("UserPromptSubmit".into(), 1, 0)));
    assert_eq!(install(agent, Some(&change.text)).unwrap().events.len(), 0);
    let removed = uninstall(agent, &change.text).unwrap();
    assert_eq!(removed.events.len(), 3);
    assert_eq!(removed.text, CODEX_CONFIG);
}

#[test]
fn codex_reviews_are_read_by_the_key_codex_gives_each_handler() {
    let source = Path::new("/home/u/.codex/config.toml");
    assert_eq!(
        codex_review_key(source, "UserPromptSubmit", 0, 0),
        "/home/u/.codex/config.toml:user_prompt_submit:0:0"
    );
    assert_eq!(
        codex_review_key(source, "PostToolUse", 2, 1),
        "/home/u/.codex/config.toml:post_tool_use:2:1"
    );
    let reviewed = codex_reviewed(CODEX_CONFIG);
    assert_eq!(
        reviewed.into_iter().collect::<Vec<_>>(),
        ["/home/u/.codex/config.toml:user_prompt_submit:0:0"]
    );
    assert!(codex_reviewed("not [ toml").is_empty());
    assert!(
        codex_reviewed("[hooks.state.\"k\"]\nenabled = true\n").is_empty(),
        "no hash: not reviewed"
    );
}

#[test]
fn gemini_folder_trust_follows_its_rules() {
    let root = Path::new("/home/u/work/app");
    let rules = |value: Value| gemini_trusts(&value.to_string(), root);
    assert_eq!(rules(json!({"/home/u/work/app": "TRUST_FOLDER"})), Some(true));
    assert_eq!(rules(json!({"/home/u/work": "TRUST_FOLDER"})), Some(true));
    assert_eq!(rules(json!({"/home/u/work/other": "TRUST_PARENT"})), Some(true));
    assert_eq!(rules(json!({"/home/u/work/app/sub": "TRUST_FOLDER"})), None);
    assert_eq!(rules(json!({"/home/u/work/appendix": "TRUST_FOLDER"})), None);
    assert_eq!(
        rules(json!({"/home/u": "TRUST_FOLDER", "/home/u/work/app": "DO_NOT_TRUST"})),
        Some(false)
    );
    assert_eq!(gemini_trusts("garbage", root), None);
}

/// The byte range of the README block (inside its fence) after
/// `<!-- cairn hook install AGENT --print -->`.
fn readme_block(readme: &str, agent: AgentKind) -> Option<(usize, usize)> {
    let marker = format!("<!-- cairn hook install {} --print -->\n", agent.name());
    let at = readme.find(&marker)? + marker.len();
    let start = readme[at..].find('\n')? + at + 1;
    let end = readme[start..].find("\n```\n")? + start + 1;
    Some((start, end))
}

/// Documentation and installer cannot drift apart: each agent's README block is its
/// snippet. `CAIRN_REGENERATE_README=1 cargo test --lib readme_` rewrites them.
#[test]
fn readme_shows_the_configuration_the_installer_writes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let mut readme = std::fs::read_to_string(&path).unwrap();
    let regenerate = std::env::var_os("CAIRN_REGENERATE_README").is_some();
    for agent in AgentKind::ALL {
        let (start, end) = readme_block(&readme, agent)
            .unwrap_or_else(|| panic!("README has no block for {}", agent.name()));
        let snippet = snippet(agent);
        if regenerate {
            readme.replace_range(start..end, &snippet);
        } else {
            assert_eq!(
                &readme[start..end],
                snippet,
                "README's {} block is stale: run `CAIRN_REGENERATE_README=1 cargo test --lib readme_`",
                agent.name()
            );
        }
    }
    if regenerate {
        std::fs::write(&path, readme).unwrap();
    }
}

#[test]
fn the_json_snippets_are_the_settings_install_writes() {
    for agent in [AgentKind::ClaudeCode, AgentKind::Gemini] {
        assert_eq!(parsed(&snippet(agent)), parsed(&install(agent, None).unwrap().text));
    }
    assert_eq!(snippet(AgentKind::Codex), install(AgentKind::Codex, None).unwrap().text);
}
