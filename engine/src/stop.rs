//! Stop sequences for streamed output.
//!
//! Text that might be the start of a stop string is held back until it either completes the
//! stop string (output is cut before it) or turns out not to (it is released), so nothing is
//! ever streamed and then retracted.

/// What a [`StopMatcher::push`] lets through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopOutput {
    /// Text that may be streamed now.
    pub emit: String,
    /// A stop string was completed: generation should end; `emit` is the text before it.
    pub stopped: bool,
}

/// Matches stop strings across streamed text pieces.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored (they would match everywhere).
    pub fn new<I, S>(stops: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut stops: Vec<String> = stops
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        stops.sort();
        stops.dedup();
        StopMatcher {
            stops,
            held: String::new(),
            stopped: false,
        }
    }

    /// The non-empty stop strings in use.
    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Whether a stop string has been matched.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The text currently held back as a possible stop-string start.
    pub fn pending(&self) -> &str {
        &self.held
    }

    /// Feeds the next decoded piece. After a stop, further pieces are discarded.
    pub fn push(&mut self, piece: &str) -> StopOutput {
        if self.stopped {
            return StopOutput {
                emit: String::new(),
                stopped: true,
            };
        }
        self.held.push_str(piece);

        // Earliest occurrence wins: the output must end before the first stop string.
        // Only the held text can contain one: everything emitted earlier was checked.
        let first = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(pos) = first {
            self.held.truncate(pos);
            self.stopped = true;
            return StopOutput {
                emit: std::mem::take(&mut self.held),
                stopped: true,
            };
        }

        let keep = self
            .stops
            .iter()
            .map(|s| partial_suffix(self.held.as_bytes(), s.as_bytes()))
            .max()
            .unwrap_or(0);
        // A byte suffix of valid UTF-8 equal to a prefix of valid UTF-8 starts at a char
        // boundary (no string starts with a continuation byte), so this split is safe.
        let split = self.held.len() - keep;
        let rest = self.held.split_off(split);
        StopOutput {
            emit: std::mem::replace(&mut self.held, rest),
            stopped: false,
        }
    }

    /// Ends the stream: returns the held-back text (empty after a stop).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &[u8], stop: &[u8]) -> usize {
    let max = text.len().min(stop.len() - 1);
    (1..=max)
        .rev()
        .find(|&n| text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces`, checking after each push that nothing emitted is later retracted;
    /// returns (all emitted text incl. the final flush, stopped, pieces consumed).
    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool, usize) {
        let mut m = StopMatcher::new(stops.iter().copied());
        let mut out = String::new();
        for (i, p) in pieces.iter().enumerate() {
            let o = m.push(p);
            out.push_str(&o.emit);
            if o.stopped {
                assert!(m.is_stopped());
                assert_eq!(m.finish(), "");
                return (out, true, i + 1);
            }
        }
        out.push_str(&m.finish());
        (out, false, pieces.len())
    }

    #[test]
    fn no_stops_streams_everything_immediately() {
        let mut m = StopMatcher::new(Vec::<String>::new());
        assert_eq!(m.push("hello").emit, "hello");
        assert_eq!(m.push(" world").emit, " world");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn stop_in_one_piece_cuts_before_it() {
        assert_eq!(
            run(&["</s>"], &["Hi", " there</s>more", "ignored"]),
            ("Hi there".into(), true, 2)
        );
    }

    #[test]
    fn stop_split_across_many_pieces() {
        let mut m = StopMatcher::new(["<|im_end|>"]);
        assert_eq!(m.push("Done.").emit, "Done.");
        for p in ["<", "|", "im", "_", "end"] {
            let o = m.push(p);
            assert_eq!(o.emit, "", "{p} must be held back");
            assert!(!o.stopped);
        }
        assert_eq!(m.pending(), "<|im_end");
        let o = m.push("|>");
        assert_eq!(
            o,
            StopOutput {
                emit: String::new(),
                stopped: true
            }
        );
        // Further input is discarded.
        assert_eq!(m.push("x").emit, "");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn false_start_is_released() {
        let mut m = StopMatcher::new(["STOP"]);
        assert_eq!(m.push("a ST").emit, "a ");
        assert_eq!(m.pending(), "ST");
        // "STA" cannot start "STOP": all of it goes out.
        assert_eq!(m.push("A").emit, "STA");
        // A trailing "S" may start "STOP" again.
        assert_eq!(m.push("RS").emit, "R");
        assert_eq!(m.push(" S").emit, "S ");
        // Held text at the end of the stream is flushed.
        assert_eq!(m.finish(), "S");
    }

    #[test]
    fn released_text_can_start_a_new_match() {
        // "aab": after "aa" the first 'a' is released, the second may still start "ab".
        assert_eq!(run(&["ab"], &["a", "a", "b"]), ("a".into(), true, 3));
        // Self-overlapping stop: "xxy" inside "xxxy".
        assert_eq!(run(&["xxy"], &["x", "x", "x", "y"]), ("x".into(), true, 4));
    }

    #[test]
    fn multiple_stops_earliest_wins() {
        assert_eq!(
            run(&["END", "\n\n"], &["one\n\ntwo END"]),
            ("one".into(), true, 1)
        );
        assert_eq!(
            run(&["END", "\n\n"], &["one EN", "D\n\n"]),
            ("one ".into(), true, 2)
        );
        // Stops sharing a prefix: the hold covers the longer partial match.
        let mut m = StopMatcher::new(["abc", "abd", "b"]);
        let o = m.push("xa");
        assert_eq!((o.emit.as_str(), o.stopped), ("x", false));
        let o = m.push("bx");
        assert_eq!((o.emit.as_str(), o.stopped), ("a", true));
        let mut m = StopMatcher::new(["abc", "abd", "b"]);
        m.push("xa");
        let o = m.push("bd");
        assert_eq!((o.emit.as_str(), o.stopped), ("", true));
    }

    #[test]
    fn overlapping_prefixes_hold_the_longest_candidate() {
        let mut m = StopMatcher::new(["hello world", "lo!"]);
        // "hel" could start "hello world"; "l" alone could start "lo!": the longer hold wins.
        assert_eq!(m.push("say hel").emit, "say ");
        assert_eq!(m.push("lo").emit, "");
        assert_eq!(m.pending(), "hello");
        let o = m.push("!");
        assert_eq!((o.emit.as_str(), o.stopped), ("hel", true));
    }

    #[test]
    fn multibyte_utf8() {
        // Stop string starting with a multi-byte char, split between pieces.
        assert_eq!(
            run(&["→停"], &["a→", "b→", "停止"]),
            ("a→b".into(), true, 3)
        );
        // A shared leading byte (é = C3 A9, è = C3 A8) must not be held or split.
        let mut m = StopMatcher::new(["è!"]);
        assert_eq!(m.push("café").emit, "café");
        assert_eq!(m.push("è").emit, "");
        assert_eq!(m.push("é").emit, "èé");
        assert_eq!(m.push("👍è").emit, "👍");
        assert_eq!(m.finish(), "è");
    }

    #[test]
    fn empty_and_duplicate_stops_are_ignored() {
        let m = StopMatcher::new(["", "x", "x"]);
        assert_eq!(m.stops(), ["x"]);
        assert_eq!(run(&[""], &["abc", ""]), ("abc".into(), false, 2));
    }

    #[test]
    fn stop_at_the_very_start() {
        assert_eq!(run(&["\n"], &["\nabc"]), ("".into(), true, 1));
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let text = "The answer: 42.<|end|> ignored";
        let stops = ["<|end|>", "<|eot|>", ": 4x"];
        let bytes: Vec<(usize, char)> = text.char_indices().collect();
        for a in 0..bytes.len() {
            for b in a..bytes.len() {
                let (i, j) = (bytes[a].0, bytes[b].0);
                let pieces = [&text[..i], &text[i..j], &text[j..]];
                let (out, stopped, _) = run(&stops, &pieces);
                assert_eq!(
                    (out.as_str(), stopped),
                    ("The answer: 42.", true),
                    "{pieces:?}"
                );
            }
        }
    }
}
