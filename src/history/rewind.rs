//! Rewinding a session as one operation: the checkpoint layer moves the session and the
//! workspace back to one of its steps, and the project facts that the rewound steps wrote
//! are reverted in memory. Every rewind the commands offer goes through [`rewind`].

use crate::checkpoint::{self, Checkpoint, RewindOutcome, Store};
use crate::memory::{self, Memory};

#[derive(Debug, thiserror::Error)]
pub enum RewindError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::Error),
    #[error(transparent)]
    Memory(#[from] memory::Error),
}

/// What a rewind did, for the command line to report.
#[derive(Debug, Clone)]
pub struct Rewound {
    /// The session and workspace side: edits saved first, where the old tip is kept, and
    /// the files written, deleted and kept.
    pub outcome: RewindOutcome,
    /// The project facts the session wrote after the target step, now reverted.
    pub reverted_facts: Vec<String>,
}

/// Rewinds `target`'s session to it (see [`Store::rewind`]), then reverts the project
/// facts that session wrote after that step.
pub fn rewind(store: &Store, target: &Checkpoint) -> Result<Rewound, RewindError> {
    let outcome = store.rewind(target)?;
    let memory = Memory::open(store.writing_repo(), store.redacts_secrets())?;
    let reverted_facts = memory.revert_session(&target.session, target.step)?;
    Ok(Rewound { outcome, reverted_facts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Changes, StepKind, StepRecord, StoreOptions};
    use crate::memory::{Origin, Source, Tier};

    #[test]
    fn rewinding_restores_the_workspace_and_reverts_the_facts_written_after_the_step() {
        let dir = tempfile::tempdir().unwrap();
        gix::init(dir.path()).unwrap();
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "first\n").unwrap();
        let store = Store::discover(dir.path(), StoreOptions::default()).unwrap();
        let mut session = store.start_session("rewind test", None, None).unwrap();
        let id = session.info.id.clone();
        let step = |session: &mut checkpoint::Session, subject: &str| {
            let record = StepRecord::new(StepKind::Prompt, subject, Changes::Scan);
            store.record_step(session, record).unwrap();
        };
        step(&mut session, "one");
        std::fs::write(&file, "second\n").unwrap();
        step(&mut session, "two");
        let mut memory = Memory::open(store.writing_repo(), false).unwrap();
        let origin = Origin { session: Some(id.clone()), step: Some(2) };
        let fact = "The notes file holds one line";
        let remembered = memory.remember(Tier::Project, fact, Source::User, &origin).unwrap();

        let target = store.resolve(&format!("{id}@1")).unwrap();
        let rewound = rewind(&store, &target).unwrap();

        assert_eq!(rewound.reverted_facts, vec![remembered.slug]);
        assert_eq!(rewound.outcome.session, id);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "first\n");
        let memory = Memory::open(store.writing_repo(), false).unwrap();
        assert!(memory.project().load().unwrap().fact(&rewound.reverted_facts[0]).is_none());
    }
}
