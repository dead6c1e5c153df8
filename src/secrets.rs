//! Things that look like secrets: private keys and the common API key formats. Used to
//! stop a push that would publish one, and by the two writers of cairn's own data (the
//! step commit writer and the memory store) to redact everything they store: see
//! [`redact_stored`].

use std::sync::OnceLock;

use regex::Regex;
use regex::bytes::RegexSet;
use serde_json::Value;

/// What each pattern of [`patterns`] finds, in order.
const KINDS: &[(&str, &str)] = &[
    // The whole block, through its END line (or to the end of the text when cut short).
    (
        "private key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
    ),
    ("AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        "GitHub token",
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}",
    ),
    ("Anthropic API key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("OpenAI API key", r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}"),
    ("Slack token", r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
    ("Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
];

#[expect(clippy::expect_used, reason = "constant patterns; `every_pattern_compiles` proves them")]
fn patterns() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        RegexSet::new(KINDS.iter().map(|(_, pattern)| *pattern)).expect("the patterns are valid")
    })
}

#[expect(clippy::expect_used, reason = "constant patterns; `every_pattern_compiles` proves them")]
fn each_pattern() -> &'static [(&'static str, Regex)] {
    static LIST: OnceLock<Vec<(&'static str, Regex)>> = OnceLock::new();
    LIST.get_or_init(|| {
        KINDS
            .iter()
            .map(|(kind, pattern)| (*kind, Regex::new(pattern).expect("the patterns are valid")))
            .collect()
    })
}

/// `text` with every secret-looking string replaced by `[redacted <kind>]`, and how many
/// were replaced.
pub fn redact(text: &str) -> (String, usize) {
    let mut out = text.to_string();
    let mut count = 0;
    for (kind, pattern) in each_pattern() {
        let found = pattern.find_iter(&out).count();
        if found > 0 {
            count += found;
            out = pattern.replace_all(&out, format!("[redacted {kind}]").as_str()).into_owned();
        }
    }
    (out, count)
}

/// Redacts every string inside a JSON value, object keys included; returns how many
/// secrets were replaced.
pub fn redact_json(value: &mut Value) -> usize {
    match value {
        Value::String(text) => {
            let (redacted, count) = redact(text);
            if count > 0 {
                *text = redacted;
            }
            count
        }
        Value::Array(items) => items.iter_mut().map(redact_json).sum(),
        Value::Object(map) => {
            let mut count = map.values_mut().map(redact_json).sum();
            // A secret used as a key (a map keyed by token, say) is rare but must not pass.
            if map.keys().any(|key| patterns().is_match(key.as_bytes())) {
                let entries = std::mem::take(map);
                for (key, value) in entries {
                    let (key, found) = redact(&key);
                    count += found;
                    map.insert(key, value);
                }
            }
            count
        }
        _ => 0,
    }
}

/// The literal start of every kind above, unanchored: a cheap first test that also sees
/// a key right after an escape in raw JSON (`"\nghp_…"`, where `\b` finds no boundary).
const MARKERS: &str = r"PRIVATE KEY|AKIA|ASIA|gh[opusr]_|github_pat_|sk-|xox[baprs]-|AIza";

#[expect(clippy::expect_used, reason = "constant patterns; `every_pattern_compiles` proves them")]
fn may_hold_secret(bytes: &[u8]) -> bool {
    static MARKER: OnceLock<regex::bytes::Regex> = OnceLock::new();
    MARKER
        .get_or_init(|| regex::bytes::Regex::new(MARKERS).expect("the markers are valid"))
        .is_match(bytes)
}

/// `bytes` as JSON values: one document, or JSON Lines (each non-blank line a value).
fn json_values(text: &str) -> Option<Vec<Value>> {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return Some(vec![value]);
    }
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// What cairn stores of its own (a `.cairn/` file, a fact file), with every
/// secret-looking string replaced; `None` when there was nothing to replace.
///
/// JSON stays valid: a JSON document, or JSON Lines, is redacted value by value, on the
/// decoded strings (so an escape before a key cannot hide it, and a private key cut short
/// cannot swallow the rest of the document), and only changed lines are re-encoded.
/// Anything else is redacted as text, and bytes that are not UTF-8 are redacted in place
/// around them.
pub fn redact_stored(bytes: &[u8]) -> Option<Vec<u8>> {
    if !may_hold_secret(bytes) {
        return None;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some(redact_raw(bytes)).filter(|out| out != bytes);
    };
    // Lines first: a one-line document is re-encoded on one line, as it was written.
    if let Some((lines, count)) = redact_json_lines(text) {
        return (count > 0).then(|| lines.into_bytes());
    }
    if let Ok(mut value) = serde_json::from_str::<Value>(text) {
        return match redact_json(&mut value) {
            0 => None,
            _ => serde_json::to_vec_pretty(&value).ok(),
        };
    }
    let (redacted, count) = redact(text);
    (count > 0).then(|| redacted.into_bytes())
}

/// `text` as JSON Lines with each line's values redacted, and how many were; `None` when
/// a non-blank line is not JSON (then it is not JSON Lines).
fn redact_json_lines(text: &str) -> Option<(String, usize)> {
    let mut out = String::with_capacity(text.len());
    let mut total = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        if content.trim().is_empty() {
            out.push_str(line);
            continue;
        }
        let mut value: Value = serde_json::from_str(content).ok()?;
        let count = redact_json(&mut value);
        if count == 0 {
            out.push_str(line);
        } else {
            total += count;
            out.push_str(&serde_json::to_string(&value).ok()?);
            out.push_str(&line[content.len()..]);
        }
    }
    Some((out, total))
}

/// [`redact`] over bytes that are not all UTF-8.
#[expect(clippy::expect_used, reason = "constant patterns; `every_pattern_compiles` proves them")]
fn redact_raw(bytes: &[u8]) -> Vec<u8> {
    static LIST: OnceLock<Vec<(&'static str, regex::bytes::Regex)>> = OnceLock::new();
    let list = LIST.get_or_init(|| {
        KINDS
            .iter()
            .map(|(kind, pattern)| {
                (*kind, regex::bytes::Regex::new(pattern).expect("the patterns are valid"))
            })
            .collect()
    });
    let mut out = bytes.to_vec();
    for (kind, pattern) in list {
        if pattern.is_match(&out) {
            out = pattern.replace_all(&out, format!("[redacted {kind}]").as_bytes()).into_owned();
        }
    }
    out
}

/// The kinds of secret `bytes` appears to hold (empty when none). JSON is judged by its
/// decoded strings, as [`redact_stored`] redacts it.
pub fn kinds_in(bytes: &[u8]) -> Vec<&'static str> {
    if !may_hold_secret(bytes) {
        return Vec::new();
    }
    let values = std::str::from_utf8(bytes).ok().and_then(json_values);
    let Some(values) = values else {
        return patterns().matches(bytes).into_iter().map(|index| KINDS[index].0).collect();
    };
    let mut found = std::collections::BTreeSet::new();
    let mut look = |text: &str| found.extend(patterns().matches(text.as_bytes()));
    values.iter().for_each(|value| each_string(value, &mut look));
    found.into_iter().map(|index| KINDS[index].0).collect()
}

/// Calls `look` on every string in `value`, object keys included.
fn each_string(value: &Value, look: &mut dyn FnMut(&str)) {
    match value {
        Value::String(text) => look(text),
        Value::Array(items) => items.iter().for_each(|item| each_string(item, look)),
        Value::Object(map) => map.iter().for_each(|(key, item)| {
            look(key);
            each_string(item, look);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(patterns().len(), KINDS.len());
        assert_eq!(each_pattern().len(), KINDS.len());
        assert!(may_hold_secret(b"AKIA"));
        assert_eq!(redact_raw(b"no secret \xff"), b"no secret \xff");
    }

    #[test]
    fn redaction_replaces_the_secret_and_keeps_the_rest() {
        let (text, count) = redact("key: AKIAIOSFODNN7EXAMPLE, done");
        assert_eq!((text.as_str(), count), ("key: [redacted AWS access key id], done", 1));
        let mut value =
            serde_json::json!({"content": ["ok", "ghp_0123456789abcdefghijklmnopqrstuvwxyz"]});
        assert_eq!(redact_json(&mut value), 1);
        assert_eq!(value["content"][1], "[redacted GitHub token]");
        assert_eq!(redact("nothing here").1, 0);
        let pem = "before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nsecretbody\n-----END RSA PRIVATE KEY-----\nafter\n";
        assert_eq!(redact(pem).0, "before\n[redacted private key]\nafter\n");
    }

    #[test]
    fn a_key_right_after_an_escape_in_raw_json_is_found_and_redacted() {
        let token = format!("ghp_{}", "a1B2".repeat(9));
        let line = format!("{{\"content\":\"Logged in\\n{token}\"}}\n");
        let redacted = String::from_utf8(redact_stored(line.as_bytes()).unwrap()).unwrap();
        assert_eq!(redacted, "{\"content\":\"Logged in\\n[redacted GitHub token]\"}\n");
        assert_eq!(kinds_in(line.as_bytes()), vec!["GitHub token"]);
        let aws = br#"{"env": "\tAKIAIOSFODNN7EXAMPLE"}"#;
        assert_eq!(kinds_in(aws), vec!["AWS access key id"]);
        assert!(redact_stored(aws).is_some());
    }

    #[test]
    fn a_secret_used_as_a_json_key_is_redacted_too() {
        let json = br#"{"tokens": {"AKIAIOSFODNN7EXAMPLE": "prod"}}"#;
        let redacted: Value = serde_json::from_slice(&redact_stored(json).unwrap()).unwrap();
        let expected = serde_json::json!({"tokens": {"[redacted AWS access key id]": "prod"}});
        assert_eq!(redacted, expected);
    }

    #[test]
    fn stored_json_stays_valid_and_other_text_is_redacted_as_text() {
        assert_eq!(redact_stored(b"{\"ok\": true}"), None);
        // A key block cut short would run to the end of the text; per value it cannot.
        let json = br#"{"a": "-----BEGIN PRIVATE KEY-----\nMIIE", "b": "kept"}"#;
        let redacted: Value = serde_json::from_slice(&redact_stored(json).unwrap()).unwrap();
        assert_eq!(redacted, serde_json::json!({"a": "[redacted private key]", "b": "kept"}));
        let lines = b"{\"k\":\"AKIAIOSFODNN7EXAMPLE\"}\r\n{\"k\": 1}\n";
        assert_eq!(
            redact_stored(lines).unwrap(),
            b"{\"k\":\"[redacted AWS access key id]\"}\r\n{\"k\": 1}\n"
        );
        let markdown = b"## Commands that worked\n- `export K=AKIAIOSFODNN7EXAMPLE`\n";
        assert_eq!(
            redact_stored(markdown).unwrap(),
            b"## Commands that worked\n- `export K=[redacted AWS access key id]`\n"
        );
        assert_eq!(
            redact_stored(b"\xff AKIAIOSFODNN7EXAMPLE \xfe").unwrap(),
            b"\xff [redacted AWS access key id] \xfe"
        );
    }

    #[test]
    fn finds_each_kind_and_nothing_in_ordinary_text() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n";
        assert_eq!(kinds_in(key.as_bytes()), ["private key"]);
        assert_eq!(kinds_in(b"aws = AKIAIOSFODNN7EXAMPLE"), ["AWS access key id"]);
        assert_eq!(kinds_in(b"token ghp_0123456789abcdefghijklmnopqrstuvwxyz"), ["GitHub token"]);
        assert_eq!(
            kinds_in(b"OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx"),
            ["OpenAI API key"]
        );
        assert!(
            kinds_in(b"key: sk-ant-api03-abcdefghijklmnopqrstuvwxyz")
                .contains(&"Anthropic API key")
        );
        assert!(kinds_in(b"fn main() { let sk = \"-----BEGIN CERTIFICATE-----\"; }").is_empty());
        assert!(kinds_in(b"the task-list and risk-free tasks").is_empty());
    }
}
