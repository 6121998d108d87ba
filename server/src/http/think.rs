//! Splits streamed model output into reasoning (`<think>…</think>`) and answer text, for
//! thinking-capable models with `think` enabled.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before any non-space output: an opening tag may still come.
    Start,
    Thinking,
    Content,
}

#[derive(Debug, Clone)]
pub struct ThinkParser {
    state: State,
    held: String,
}

impl Default for ThinkParser {
    fn default() -> Self {
        ThinkParser::new(false)
    }
}

impl ThinkParser {
    /// `opened`: the prompt already ends inside a thinking block (the template wrote the
    /// opening tag), so output starts as reasoning.
    pub fn new(opened: bool) -> ThinkParser {
        ThinkParser {
            state: if opened {
                State::Thinking
            } else {
                State::Start
            },
            held: String::new(),
        }
    }

    /// Feeds output text; returns `(thinking, content)` ready to stream.
    pub fn push(&mut self, text: &str) -> (String, String) {
        self.held.push_str(text);
        let mut thinking = String::new();
        let mut content = String::new();
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.held.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(OPEN) {
                        self.held = rest.trim_start().to_string();
                        self.state = State::Thinking;
                        continue;
                    }
                    if trimmed.is_empty() || OPEN.starts_with(trimmed) {
                        break; // wait for more
                    }
                    self.state = State::Content;
                }
                State::Thinking => {
                    if let Some(pos) = self.held.find(CLOSE) {
                        thinking.push_str(&self.held[..pos]);
                        self.held = self.held[pos + CLOSE.len()..].trim_start().to_string();
                        self.state = State::Content;
                        continue;
                    }
                    let keep = partial_suffix(&self.held, CLOSE);
                    let cut = self.held.len() - keep;
                    thinking.push_str(&self.held[..cut]);
                    self.held.drain(..cut);
                    break;
                }
                State::Content => {
                    content.push_str(&self.held);
                    self.held.clear();
                    break;
                }
            }
        }
        (thinking, content)
    }

    /// Ends the stream: whatever is held goes where the state says.
    pub fn finish(&mut self) -> (String, String) {
        let rest = std::mem::take(&mut self.held);
        match self.state {
            State::Thinking => (rest, String::new()),
            _ => (String::new(), rest),
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && text.ends_with(&tag[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str], opened: bool) -> (String, String) {
        let mut p = ThinkParser::new(opened);
        let (mut t, mut c) = (String::new(), String::new());
        for piece in pieces {
            let (a, b) = p.push(piece);
            t += &a;
            c += &b;
        }
        let (a, b) = p.finish();
        (t + &a, c + &b)
    }

    #[test]
    fn splits_across_pieces() {
        assert_eq!(
            run(&["<th", "ink>hmm", " ok</th", "ink>\n\nAnswer"], false),
            ("hmm ok".into(), "Answer".into())
        );
        assert_eq!(
            run(&["Plain <think> text"], false),
            ("".into(), "Plain <think> text".into())
        );
        assert_eq!(
            run(&["  \n", "<think>a</think>b"], false),
            ("a".into(), "b".into())
        );
        assert_eq!(
            run(&["reason</think>x"], true),
            ("reason".into(), "x".into())
        );
        assert_eq!(
            run(&["unfinished <"], true),
            ("unfinished <".into(), "".into())
        );
        assert_eq!(run(&["<thi"], false), ("".into(), "<thi".into()));
    }
}
