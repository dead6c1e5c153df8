//! `MEMORY.md`, the index of a memory tier: one line per fact, newest last, capped at
//! [`INDEX_MAX_LINES`] so what is injected into a prompt stays bounded.

use super::store::{FACTS_DIR, INDEX_MAX_LINES};

/// `MEMORY.md`: one line per fact, `- [slug](facts/slug.md) headline`, newest last.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Index {
    lines: Vec<(String, String)>,
}

impl Index {
    pub(super) fn parse(text: &str) -> Index {
        let lines = text
            .lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("- [")?;
                let (slug, rest) = rest.split_once("](")?;
                let (_, headline) = rest.split_once(") ")?;
                Some((slug.to_string(), headline.to_string()))
            })
            .collect();
        Index { lines }
    }

    /// The fact names it lists, oldest first.
    pub(super) fn into_slugs(self) -> impl Iterator<Item = String> {
        self.lines.into_iter().map(|(slug, _)| slug)
    }

    pub(super) fn set(&mut self, slug: &str, headline: &str) {
        match self.lines.iter_mut().find(|(s, _)| s == slug) {
            Some(line) => line.1 = headline.to_string(),
            None => self.lines.push((slug.to_string(), headline.to_string())),
        }
        if self.lines.len() > INDEX_MAX_LINES {
            let excess = self.lines.len() - INDEX_MAX_LINES;
            self.lines.drain(..excess);
        }
    }

    pub(super) fn remove(&mut self, slug: &str) {
        self.lines.retain(|(s, _)| s != slug);
    }

    pub(super) fn render(&self) -> String {
        self.lines
            .iter()
            .map(|(slug, headline)| format!("- [{slug}]({FACTS_DIR}/{slug}.md) {headline}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_keeps_one_line_per_fact_and_drops_the_oldest_past_its_cap() {
        let mut index = Index::default();
        for n in 0..INDEX_MAX_LINES + 5 {
            index.set(&format!("fact-{n}"), &format!("fact number {n}"));
        }
        index.set("fact-10", "changed");
        assert_eq!(index.lines.len(), INDEX_MAX_LINES);
        assert_eq!(index.lines[0].0, "fact-5");
        let reparsed = Index::parse(&index.render());
        assert_eq!(reparsed, index);
        assert!(index.render().contains("- [fact-10](facts/fact-10.md) changed\n"));
        index.remove("fact-10");
        assert!(!index.render().contains("[fact-10]"));
    }
}
