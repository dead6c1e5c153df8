//! The message of a memory commit: a subject line, and `Cairn-Session:` / `Cairn-Step:`
//! trailers naming the session step that wrote it, which is how a rewind finds the facts
//! a session wrote after the step it goes back to.

use super::store::Origin;

pub(super) fn compose(subject: &str, origin: &Origin) -> String {
    let mut message = format!("{}\n", crate::text::one_line(subject));
    let mut trailers = Vec::new();
    if let Some(session) = &origin.session {
        trailers.push(format!("Cairn-Session: {session}"));
    }
    if let Some(step) = origin.step {
        trailers.push(format!("Cairn-Step: {step}"));
    }
    if !trailers.is_empty() {
        message.push('\n');
        message.push_str(&trailers.join("\n"));
        message.push('\n');
    }
    message
}

/// The `Cairn-Session:` and `Cairn-Step:` trailers of a memory commit.
pub(super) fn origin_of(message: &str) -> (Option<String>, Option<u64>) {
    let mut session = None;
    let mut step = None;
    for line in message.lines() {
        if let Some(value) = line.strip_prefix("Cairn-Session: ") {
            session = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("Cairn-Step: ") {
            step = value.trim().parse().ok();
        }
    }
    (session, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_trailers_round_trip() {
        let message = compose("remember: x", &Origin { session: Some("s1".into()), step: Some(4) });
        assert_eq!(origin_of(&message), (Some("s1".into()), Some(4)));
        assert_eq!(origin_of("manual edit\n"), (None, None));
    }
}
