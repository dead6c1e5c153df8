//! Restoring a conversation from a recorded session: the messages, the compaction point,
//! the notes and the summary a step stores, decoded through [`crate::transcript`].

use crate::checkpoint::StepState;
use crate::llm::Message;
use crate::transcript::{self, DecodeError};

/// A session's state at a step, rebuilt from its stored files.
#[derive(Debug, Default)]
pub struct Restored {
    pub history: Vec<Message>,
    pub context_from: usize,
    pub notes: String,
    pub summary: Option<String>,
}

impl Restored {
    /// The state stored at a step; a message that does not decode is an error, never
    /// skipped.
    pub fn from_state(state: &StepState) -> Result<Restored, DecodeError> {
        Ok(Restored {
            history: transcript::decode_conversation(&state.messages)?,
            context_from: state.context_from,
            notes: state.notes.clone(),
            summary: state.summary.clone(),
        })
    }
}
