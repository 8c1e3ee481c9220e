//! While the command runs, once a second on a terminal: `stacksample: 12 s, 1234 samples so
//! far`, rewritten in place and cleared at the end. The count is the run's shared progress
//! file, which every profiled process of the tree adds to.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stacksample::ProgressCounter;

/// The progress line being shown, and the file behind it.
pub struct ProgressLine {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts showing progress when stderr is a terminal; the file goes at `path`, and
    /// [`ProgressLine::path`] is what the command's `STACKSAMPLE_PROGRESS` must name.
    pub fn start(path: PathBuf) -> Option<ProgressLine> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(libc::STDERR_FILENO) } != 1 {
            return None;
        }
        let counter = ProgressCounter::create(&path)
            .map_err(|error| eprintln!("{error}; no progress is shown"))
            .ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || show(&counter, &stopped));
        Some(ProgressLine {
            path,
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }
}

impl Drop for ProgressLine {
    /// Clears the line and removes the file.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn show(counter: &ProgressCounter, stop: &AtomicBool) {
    let started = Instant::now();
    let mut shown = false;
    let mut next = Duration::from_secs(1);
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let elapsed = started.elapsed();
        if elapsed >= next {
            next += Duration::from_secs(1);
            let line = format!(
                "\rstacksample: {} s, {} samples so far\x1b[K",
                elapsed.as_secs(),
                counter.get()
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            shown = true;
        }
    }
    if shown {
        let _ = std::io::stderr().write_all(b"\r\x1b[K");
    }
}
