//! Errors of the library; each says what failed, where, and what to do.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: nothing was changed (exit 2).
    #[error("{0}")]
    Input(String),
    /// The handover failed and was rolled back (exit 1).
    #[error("{0}")]
    Failed(String),
    /// Fault injection stopped the run between two steps (tests of crash recovery).
    #[error("stopped after step {after} by fault injection")]
    Interrupted { after: usize },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => 2,
            Error::Failed(_) | Error::Interrupted { .. } => 1,
        }
    }
}
