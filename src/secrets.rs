//! Things that look like secrets: private keys and the common API key formats. Used to
//! stop a push that would publish one.

use std::sync::OnceLock;

use regex::bytes::RegexSet;

/// What each pattern of [`patterns`] finds, in order.
const KINDS: &[(&str, &str)] = &[
    (
        "private key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY( BLOCK)?-----",
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

/// The kinds of secret `bytes` appears to hold (empty when none).
pub fn kinds_in(bytes: &[u8]) -> Vec<&'static str> {
    patterns().matches(bytes).into_iter().map(|index| KINDS[index].0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
