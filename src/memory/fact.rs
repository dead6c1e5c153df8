//! One remembered fact: a Markdown file `facts/<slug>.md` whose TOML front matter (between
//! `+++` lines, as Hugo and Zola write it) says where the fact came from.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a fact came from. Only what the user said and what was checked is kept as
/// durable memory; guesses never are. A fact merged from a remote says which remote, and
/// stays that way until the user edits it: another clone's memory is data, not the user's
/// word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The user stated it.
    User,
    /// An outcome that was checked (a test passed, a command worked).
    Verified,
    /// Seen in a command's output, not otherwise checked.
    Observed,
    /// Merged from this remote's memory (`remote:<name>` in the front matter).
    Remote(RemoteName),
}

impl Source {
    /// A source a session or the promotion pass may claim: `user`, `verified` or
    /// `observed`. `remote:<name>` is never accepted from them; only a merge writes it.
    pub fn parse(text: &str) -> Option<Source> {
        match text {
            "user" => Some(Source::User),
            "verified" => Some(Source::Verified),
            "observed" => Some(Source::Observed),
            _ => None,
        }
    }

    /// The remote a fact came from, if it came from one.
    pub fn remote(&self) -> Option<&RemoteName> {
        match self {
            Source::Remote(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::User => f.write_str("user"),
            Source::Verified => f.write_str("verified"),
            Source::Observed => f.write_str("observed"),
            Source::Remote(name) => write!(f, "remote:{name}"),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Some(source) = Source::parse(&text) {
            return Ok(source);
        }
        match text.strip_prefix("remote:") {
            Some(name) => {
                RemoteName::new(name).map(Source::Remote).map_err(serde::de::Error::custom)
            }
            None => Err(serde::de::Error::custom(format!(
                "`{}` is not a source; expected user, verified, observed or remote:<name>",
                text.escape_default()
            ))),
        }
    }
}

/// A git remote's name as a fact's source may carry it: letters, digits, `.`, `_` and `-`,
/// at most 64, not starting with `.` or `-`. Anything else is refused, so a source can
/// never smuggle text (a newline, a bracket, an instruction) into the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteName(String);

impl RemoteName {
    pub fn new(name: &str) -> Result<RemoteName, String> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with(['.', '-'])
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if valid {
            Ok(RemoteName(name.to_owned()))
        } else {
            Err(format!(
                "`{}` cannot name a remote in a fact's source: use up to 64 letters, digits, \
                 `.`, `_` or `-`",
                name.escape_default()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RemoteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fact's front matter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// RFC 3339 time the fact was first written.
    pub created: String,
    pub source: Source,
    /// The session and step that wrote it, when a session did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    /// RFC 3339 time the fact was last written or confirmed.
    pub last_confirmed: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub slug: String,
    pub meta: Meta,
    pub text: String,
}

const FENCE: &str = "+++";

impl Fact {
    /// Parses the content of `facts/<slug>.md`.
    pub fn parse(slug: &str, content: &str) -> Result<Fact, String> {
        let rest = content
            .strip_prefix(FENCE)
            .and_then(|rest| rest.strip_prefix('\n').or_else(|| rest.strip_prefix("\r\n")))
            .ok_or("it does not start with a `+++` front matter line")?;
        let end = rest.find("\n+++").ok_or("its front matter has no closing `+++` line")?;
        let meta: Meta = toml::from_str(&rest[..end])
            .map_err(|err| format!("bad front matter: {}", err.message()))?;
        let body = &rest[end + 1 + FENCE.len()..];
        let text = body.trim().to_string();
        if text.is_empty() {
            return Err("the fact's text is empty".into());
        }
        Ok(Fact { slug: slug.to_string(), meta, text })
    }

    pub fn render(&self) -> String {
        let meta = toml::to_string(&self.meta).unwrap_or_default();
        format!("{FENCE}\n{meta}{FENCE}\n{}\n", self.text.trim())
    }

    /// The fact's first line, for the index.
    pub fn headline(&self) -> String {
        headline(&self.text)
    }
}

/// The first non-empty line of `text`, cut to a length that suits an index line.
pub fn headline(text: &str) -> String {
    const MAX: usize = 160;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if line.len() <= MAX {
        return line.to_string();
    }
    let mut cut = MAX;
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &line[..cut])
}

/// A file-name slug for a fact: its first words, lowercase ASCII, joined by `-`.
pub fn slug_for(text: &str) -> String {
    const MAX: usize = 48;
    let mut slug = String::new();
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        if !slug.is_empty() && slug.len() + 1 + word.len() > MAX {
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word[..word.len().min(MAX)]);
    }
    if slug.is_empty() { "fact".to_string() } else { slug }
}

/// Whether `slug` is a name `facts/<slug>.md` may have: it must not escape the directory
/// or hide (a user typing `cairn memory forget ../x` gets an error, not a surprise).
pub fn is_valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 100
        && !slug.starts_with(['.', '-'])
        && slug.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            created: "2026-11-24T10:00:00Z".into(),
            source: Source::User,
            session: Some("20261124-1000-abcd".into()),
            step: Some(3),
            last_confirmed: "2026-11-24T10:00:00Z".into(),
        }
    }

    #[test]
    fn a_fact_round_trips_through_its_file() {
        let fact =
            Fact { slug: "tests".into(), meta: meta(), text: "Run `cargo test --locked`.".into() };
        let parsed = Fact::parse("tests", &fact.render()).unwrap();
        assert_eq!(parsed, fact);
    }

    #[test]
    fn bad_front_matter_is_described() {
        for (content, expected) in [
            ("no front matter\n", "does not start"),
            ("+++\ncreated = 1\n", "no closing"),
            ("+++\ncreated = 1\n+++\ntext\n", "bad front matter"),
            (
                "+++\ncreated = \"x\"\nsource = \"guess\"\nlast_confirmed = \"x\"\n+++\ntext\n",
                "bad front matter",
            ),
            ("+++\ncreated = \"x\"\nsource = \"user\"\nlast_confirmed = \"x\"\n+++\n\n", "empty"),
        ] {
            let err = Fact::parse("x", content).unwrap_err();
            assert!(err.contains(expected), "{content:?}: {err}");
        }
    }

    #[test]
    fn a_remote_source_round_trips_and_only_a_valid_remote_name_is_accepted() {
        let remote = Source::Remote(RemoteName::new("origin").unwrap());
        let fact = Fact {
            slug: "x".into(),
            meta: Meta { source: remote.clone(), ..meta() },
            text: "The API is at port 8080.".into(),
        };
        assert!(fact.render().contains("source = \"remote:origin\"\n"), "{}", fact.render());
        assert_eq!(Fact::parse("x", &fact.render()).unwrap().meta.source, remote);
        let with = |source: &str| {
            format!("+++\ncreated = \"x\"\nsource = {source}\nlast_confirmed = \"x\"\n+++\ntext\n")
        };
        for hostile in [
            "\"remote:\"",
            "\"remote:evil name\"",
            "\"remote:a\\nb\"",
            "\"remote:-x\"",
            "\"remote:a/b\"",
            "\"Remote:origin\"",
            "\"remote\"",
            "\"user \"",
        ] {
            let err = Fact::parse("x", &with(hostile)).unwrap_err();
            assert!(err.contains("bad front matter"), "{hostile}: {err}");
        }
        // A session cannot claim a remote source.
        assert_eq!(Source::parse("remote:origin"), None);
    }

    #[test]
    fn slugs_are_short_safe_file_names() {
        assert_eq!(slug_for("Tests need `--locked`!"), "tests-need-locked");
        assert_eq!(slug_for("日本語"), "fact");
        let long = slug_for(&"word ".repeat(40));
        assert!(long.len() <= 48 && is_valid_slug(&long), "{long}");
        assert!(!is_valid_slug("../etc"));
        assert!(!is_valid_slug(".hidden"));
        assert!(!is_valid_slug("a/b"));
        assert!(is_valid_slug("tests-need-locked-2"));
    }
}
