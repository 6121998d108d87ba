//! Spinners and progress bars on stderr, as Ollama's `progress` package draws
//! them: on a terminal every state is redrawn in place ten times a second; when
//! stderr is not a terminal each state's final text is printed once, as a plain
//! line, when it finishes (so logs read `pulling manifest`, ..., `success`).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::format::human_bytes;

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

enum State {
    Spinner {
        message: String,
        stopped: bool,
    },
    Bar {
        message: String,
        total: i64,
        initial: i64,
        current: i64,
        started: Instant,
        stopped: Option<Instant>,
    },
}

impl State {
    fn finished(&self) -> bool {
        match self {
            State::Spinner { stopped, .. } => *stopped,
            State::Bar { stopped, .. } => stopped.is_some(),
        }
    }

    /// The line as drawn on a terminal of `width` columns (`frame` animates spinners).
    fn render(&self, width: usize, frame: usize) -> String {
        match self {
            State::Spinner { message, stopped } => {
                let mut s = String::new();
                let m = message.trim();
                if !m.is_empty() {
                    s.push_str(m);
                    s.push(' ');
                }
                if !stopped {
                    s.push_str(FRAMES[frame % FRAMES.len()]);
                    s.push(' ');
                }
                s
            }
            State::Bar {
                message,
                total,
                initial,
                current,
                started,
                stopped,
            } => {
                let percent = if *total > 0 {
                    (*current as f64 / *total as f64 * 100.0).clamp(0.0, 100.0)
                } else {
                    0.0
                };
                let mut pre = String::new();
                if !message.trim().is_empty() {
                    pre.push_str(message.trim());
                    pre.push(' ');
                }
                pre.push_str(&format!("{:3.0}%", percent.floor()));
                let elapsed = stopped.unwrap_or_else(Instant::now) - *started;
                let secs = elapsed.as_secs_f64();
                let rate = if secs > 0.0 {
                    (*current - *initial) as f64 / secs
                } else {
                    0.0
                };
                let mut suf = String::new();
                if stopped.is_none() {
                    suf.push_str(&format!(
                        "{:>6}/{:<6}",
                        human_bytes(*current),
                        human_bytes(*total)
                    ));
                } else {
                    suf.push_str(&format!("{:>6}       ", human_bytes(*total)));
                }
                if stopped.is_none() && rate > 0.0 {
                    suf.push_str(&format!("  {:>6}/s", human_bytes(rate as i64)));
                    let left = ((*total - *current).max(0) as f64 / rate) as u64;
                    suf.push_str(&format!("  {:>6}", short_duration(left)));
                } else {
                    suf.push_str(&" ".repeat(18));
                }
                let used = pre.chars().count() + suf.chars().count() + 5;
                let free = width.saturating_sub(used);
                let filled = (free as f64 * percent / 100.0) as usize;
                format!(
                    "{pre} ▕{}{}▏ {suf}",
                    "█".repeat(filled),
                    " ".repeat(free - filled)
                )
            }
        }
    }

    /// The line printed once when stderr is not a terminal.
    fn plain(&self) -> String {
        match self {
            State::Spinner { message, .. } => message.trim().to_string(),
            State::Bar {
                message,
                total,
                current,
                ..
            } => {
                let percent = if *total > 0 {
                    (*current as f64 / *total as f64 * 100.0).clamp(0.0, 100.0)
                } else {
                    0.0
                };
                format!(
                    "{} {:.0}% {}/{}",
                    message.trim(),
                    percent.floor(),
                    human_bytes(*current),
                    human_bytes(*total)
                )
            }
        }
    }
}

/// `59m59s`-style remaining time.
fn short_duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{}m", s / 3600, s / 60 % 60),
        s if s >= 60 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

struct Inner {
    states: Vec<State>,
    /// Lines drawn last time (terminal mode).
    drawn: usize,
    /// States already printed (plain mode).
    printed: Vec<bool>,
    frame: usize,
    done: bool,
}

/// A set of progress lines on stderr. Stop it with [`Progress::stop`] (leaves the
/// final lines) or [`Progress::stop_and_clear`] (erases them).
pub struct Progress {
    inner: Arc<(Mutex<Inner>, Condvar)>,
    tty: bool,
    thread: Option<JoinHandle<()>>,
}

/// Identifies a state added to a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(usize);

impl Progress {
    pub fn new() -> Progress {
        Progress::with_tty(std::io::stderr().is_terminal())
    }

    pub fn with_tty(tty: bool) -> Progress {
        let inner = Arc::new((
            Mutex::new(Inner {
                states: Vec::new(),
                drawn: 0,
                printed: Vec::new(),
                frame: 0,
                done: false,
            }),
            Condvar::new(),
        ));
        let thread = tty.then(|| {
            let inner = inner.clone();
            std::thread::spawn(move || {
                let (lock, cvar) = &*inner;
                let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let (g, _) = cvar
                        .wait_timeout(guard, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner());
                    guard = g;
                    if guard.done {
                        return;
                    }
                    guard.frame += 1;
                    draw(&mut guard);
                }
            })
        });
        Progress { inner, tty, thread }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut guard = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    fn add(&self, state: State) -> Id {
        self.with(|i| {
            i.states.push(state);
            i.printed.push(false);
            Id(i.states.len() - 1)
        })
    }

    pub fn spinner(&self, message: &str) -> Id {
        self.add(State::Spinner {
            message: message.to_string(),
            stopped: false,
        })
    }

    pub fn bar(&self, message: &str, total: i64, completed: i64) -> Id {
        let id = self.add(State::Bar {
            message: message.to_string(),
            total,
            initial: completed,
            current: completed,
            started: Instant::now(),
            stopped: None,
        });
        self.set_bar(id, completed);
        id
    }

    pub fn set_message(&self, id: Id, message: &str) {
        self.with(|i| {
            if let Some(State::Spinner { message: m, .. } | State::Bar { message: m, .. }) =
                i.states.get_mut(id.0)
            {
                *m = message.to_string();
            }
        });
    }

    pub fn set_bar(&self, id: Id, value: i64) {
        let tty = self.tty;
        self.with(|i| {
            if let Some(State::Bar {
                total,
                current,
                stopped,
                ..
            }) = i.states.get_mut(id.0)
            {
                let mut v = value;
                if v >= *total {
                    v = *total;
                    stopped.get_or_insert_with(Instant::now);
                }
                *current = v;
            }
            if !tty {
                print_finished(i);
            }
        });
    }

    pub fn stop_spinner(&self, id: Id) {
        let tty = self.tty;
        self.with(|i| {
            if let Some(State::Spinner { stopped, .. }) = i.states.get_mut(id.0) {
                *stopped = true;
            }
            if !tty {
                print_finished(i);
            }
        });
    }

    fn finish(&mut self) -> bool {
        let first = self.with(|i| {
            let first = !i.done;
            i.done = true;
            for s in &mut i.states {
                if let State::Spinner { stopped, .. } = s {
                    *stopped = true;
                }
            }
            first
        });
        self.inner.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        first
    }

    /// Stops spinners and leaves the final lines (plain mode: prints what is left).
    pub fn stop(mut self) {
        if !self.finish() {
            return;
        }
        let tty = self.tty;
        self.with(|i| {
            if tty {
                draw(i);
                if i.drawn > 0 {
                    eprintln!();
                }
            } else {
                for (k, s) in i.states.iter().enumerate() {
                    if !i.printed[k] {
                        i.printed[k] = true;
                        let line = s.plain();
                        if !line.is_empty() {
                            eprintln!("{line}");
                        }
                    }
                }
            }
        });
    }

    /// Stops and erases the lines (the spinner while waiting for a model).
    pub fn stop_and_clear(mut self) {
        if !self.finish() {
            return;
        }
        if self.tty {
            self.with(|i| {
                let mut out = String::from("\x1b[?25l");
                for k in 0..i.drawn {
                    if k > 0 {
                        out.push_str("\x1b[A");
                    }
                    out.push_str("\x1b[2K\x1b[1G");
                }
                out.push_str("\x1b[?25h");
                i.drawn = 0;
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(out.as_bytes());
                let _ = err.flush();
            });
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Plain mode: prints, in order, the finished states not printed yet (stops at the
/// first unfinished one so lines keep their order).
fn print_finished(i: &mut Inner) {
    for k in 0..i.states.len() {
        if i.printed[k] {
            continue;
        }
        if !i.states[k].finished() {
            break;
        }
        i.printed[k] = true;
        let line = i.states[k].plain();
        if !line.is_empty() {
            eprintln!("{line}");
        }
    }
}

fn draw(i: &mut Inner) {
    let (width, height) = terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, h)| (w.0 as usize, h.0 as usize))
        .unwrap_or((80, 24));
    let mut out = String::from("\x1b[?2026h\x1b[?25l");
    for _ in 1..i.drawn.max(1) {
        out.push_str("\x1b[A");
    }
    out.push_str("\x1b[1G");
    let shown = i.states.len().min(height.max(1));
    let start = i.states.len() - shown;
    for k in start..i.states.len() {
        out.push_str(&i.states[k].render(width, i.frame));
        out.push_str("\x1b[K");
        if k + 1 < i.states.len() {
            out.push('\n');
        }
    }
    out.push_str("\x1b[?25h\x1b[?2026l");
    i.drawn = shown;
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let s = State::Spinner {
            message: "pulling manifest".into(),
            stopped: false,
        };
        assert_eq!(s.render(80, 0), "pulling manifest ⠋ ");
        let done = State::Spinner {
            message: "success".into(),
            stopped: true,
        };
        assert_eq!(done.render(80, 3), "success ");
        let t = Instant::now();
        let bar = State::Bar {
            message: "pulling 8eeb52dfb3bb...".into(),
            total: 2_000_000_000,
            initial: 0,
            current: 2_000_000_000,
            started: t,
            stopped: Some(t),
        };
        let line = bar.render(80, 0);
        assert!(line.starts_with("pulling 8eeb52dfb3bb... 100% ▕"), "{line}");
        assert!(line.contains("▏   2 GB"), "{line}");
        // One column stays free so the terminal never wraps the line.
        assert_eq!(line.chars().count(), 79, "{line}");
        assert_eq!(bar.plain(), "pulling 8eeb52dfb3bb... 100% 2 GB/2 GB");
        assert_eq!(short_duration(3599), "59m59s");
    }
}
