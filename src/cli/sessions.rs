//! `cairn sessions`: list the sessions in this repository, newest first.
//!
//! Titles and agent names come from each session's `session.toml`, which a fetched
//! session brings from another machine, so they are cleaned before they are printed.
//! Each session's tokens and estimated cost are the sum over the steps of its current
//! line (steps rewound away are not counted).

use std::process::ExitCode;

use crate::checkpoint::{SessionSummary, Store};
use crate::llm::Usage;
use crate::title::session_title;

use super::CommandError;
use super::common::{open_store, print_json, rfc3339};
use super::usage::{Prices, Spent};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the list as JSON.
    #[arg(long)]
    json: bool,
}

/// A session in `cairn sessions --json`: every time in RFC 3339, UTC.
#[derive(Debug, serde::Serialize)]
struct Listed<'a> {
    id: &'a str,
    title: &'a str,
    steps: u64,
    base: Option<&'a str>,
    tip: &'a str,
    /// `null` when the stored time is not a valid RFC 3339 time.
    created: Option<String>,
    updated: Option<String>,
    /// The newest step's time, seconds since the epoch.
    updated_unix: i64,
    /// The agent that recorded it (`claude-code`, `codex`, `gemini`), absent for cairn's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a str>,
    /// The tokens its steps used; `null` when none reported usage.
    usage: Option<Usage>,
    /// Their estimated cost in dollars; `null` unless every step that used tokens has a
    /// `price` table for its provider.
    cost: Option<f64>,
}

impl<'a> Listed<'a> {
    fn new(session: &'a SessionSummary, spent: Spent) -> Self {
        Listed {
            id: &session.id,
            title: &session.title,
            steps: session.steps,
            base: session.base.as_deref(),
            tip: &session.tip,
            created: session
                .created
                .parse::<jiff::Timestamp>()
                .ok()
                .and_then(|time| rfc3339(time.as_second())),
            updated: rfc3339(session.updated),
            updated_unix: session.updated,
            agent: session.agent.as_deref(),
            usage: spent.usage,
            cost: spent.cost,
        }
    }
}

/// What the steps of `session`'s current line used.
fn spent(store: &Store, session: &SessionSummary, prices: &Prices) -> Result<Spent, CommandError> {
    Spent::of_steps(store, &store.steps(&session.id)?, prices)
}

pub fn run(args: Args) -> Result<ExitCode, CommandError> {
    let store = open_store()?;
    let sessions = store.sessions()?;
    let prices = Prices::configured();
    if args.json {
        let listed = sessions
            .iter()
            .map(|session| Ok(Listed::new(session, spent(&store, session, &prices)?)))
            .collect::<Result<Vec<_>, CommandError>>()?;
        print_json(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    if sessions.is_empty() {
        println!("No sessions yet. `cairn checkpoint --new` records one.");
        return Ok(ExitCode::SUCCESS);
    }
    let current = store.current_session()?;
    let now = jiff::Timestamp::now().as_second();
    for session in &sessions {
        let marker = if current.as_deref() == Some(session.id.as_str()) { "*" } else { " " };
        let steps = if session.steps == 1 { "step " } else { "steps" };
        let agent = session.agent.as_deref().map(|agent| format!("[{}] ", session_title(agent)));
        println!(
            "{marker} {}  {:>3} {steps}  {:<11}  {}{}",
            session.id,
            session.steps,
            age(now.saturating_sub(session.updated)),
            agent.unwrap_or_default(),
            session_title(&session.title),
        );
        if let Some(line) = spent(&store, session, &prices)?.text() {
            println!("      tokens: {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How long ago something happened, for humans: `just now`, `3 min ago`, `5 h ago`,
/// `2 days ago`, `7 weeks ago`. A time in the future (a skewed clock) is `in the future`.
pub(super) fn age(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const WEEK: i64 = 7 * DAY;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match seconds {
        ..0 => "in the future".to_string(),
        0..MINUTE => "just now".to_string(),
        MINUTE..HOUR => format!("{} min ago", seconds / MINUTE),
        HOUR..DAY => format!("{} h ago", seconds / HOUR),
        DAY..WEEK => plural(seconds / DAY, "day"),
        _ => plural(seconds / WEEK, "week"),
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        assert_eq!(age(-5), "in the future");
        assert_eq!(age(0), "just now");
        assert_eq!(age(59), "just now");
        assert_eq!(age(60), "1 min ago");
        assert_eq!(age(3 * 60 + 59), "3 min ago");
        assert_eq!(age(3600), "1 h ago");
        assert_eq!(age(23 * 3600 + 3599), "23 h ago");
        assert_eq!(age(86_400), "1 day ago");
        assert_eq!(age(6 * 86_400), "6 days ago");
        assert_eq!(age(7 * 86_400), "1 week ago");
        assert_eq!(age(100 * 86_400), "14 weeks ago");
    }
}
