//! A command's output, read on threads of their own: a daemon the command started may keep
//! its pipes open long after the command exited.

use std::io::Read;
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

/// What a pipe has said so far, read on a thread of its own until its end.
pub(super) struct Drained {
    text: std::sync::Arc<Mutex<Vec<u8>>>,
    ended: mpsc::Receiver<()>,
}

/// How long, after the command exits, its output may take to arrive.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

pub(super) fn drain(mut pipe: impl Read + Send + 'static) -> Drained {
    let text = std::sync::Arc::new(Mutex::new(Vec::new()));
    let (tx, ended) = mpsc::channel();
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            let mut text = sink.lock().unwrap_or_else(PoisonError::into_inner);
            text.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(());
    });
    Drained { text, ended }
}

impl Drained {
    /// The text once the pipe ended, or what came within the grace (a daemon holds it).
    pub(super) fn take(self) -> String {
        let _ = self.ended.recv_timeout(DRAIN_GRACE);
        let text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&text).into_owned()
    }
}
