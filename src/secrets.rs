//! Things that look like secrets: private keys and the common API key formats. Used to
//! stop a push that would publish one, and to redact tool output before it is stored.

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

fn patterns() -> &'static RegexSet {
    static SET: OnceLock<RegexSet> = OnceLock::new();
    SET.get_or_init(|| {
        RegexSet::new(KINDS.iter().map(|(_, pattern)| *pattern)).expect("the patterns are valid")
    })
}

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

/// Redacts every string inside a JSON value; returns how many secrets were replaced.
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
        Value::Object(map) => map.values_mut().map(redact_json).sum(),
        _ => 0,
    }
}

/// The kinds of secret `bytes` appears to hold (empty when none).
pub fn kinds_in(bytes: &[u8]) -> Vec<&'static str> {
    patterns().matches(bytes).into_iter().map(|index| KINDS[index].0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
