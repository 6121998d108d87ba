//! Ollama's built-in templates and its template auto-detection (`template.Named`): a
//! GGUF's Jinja chat template is matched against the Jinja strings of Ollama's
//! `template/index.json`; the closest one (Levenshtein distance, in characters, below
//! 100) names a built-in Go template and its default `stop` parameters.
//!
//! The data under `builtin/ollama/` is copied verbatim from github.com/ollama/ollama
//! `template/` (MIT license, see `builtin/ollama/README.md`); the matching is ours.

use std::sync::OnceLock;

use serde::Deserialize;

/// Distances at or above this are "no matching template found".
const MAX_DISTANCE: usize = 100;

/// `(name, Go template, params JSON)` of every template `index.json` names.
const FILES: &[(&str, &str, Option<&str>)] = &[
    (
        "alfred",
        include_str!("builtin/ollama/alfred.gotmpl"),
        Some(include_str!("builtin/ollama/alfred.json")),
    ),
    (
        "alpaca",
        include_str!("builtin/ollama/alpaca.gotmpl"),
        Some(include_str!("builtin/ollama/alpaca.json")),
    ),
    (
        "chatml",
        include_str!("builtin/ollama/chatml.gotmpl"),
        Some(include_str!("builtin/ollama/chatml.json")),
    ),
    (
        "chatqa",
        include_str!("builtin/ollama/chatqa.gotmpl"),
        Some(include_str!("builtin/ollama/chatqa.json")),
    ),
    (
        "codellama-70b-instruct",
        include_str!("builtin/ollama/codellama-70b-instruct.gotmpl"),
        Some(include_str!("builtin/ollama/codellama-70b-instruct.json")),
    ),
    (
        "cohere2",
        include_str!("builtin/ollama/cohere2.gotmpl"),
        Some(include_str!("builtin/ollama/cohere2.json")),
    ),
    (
        "command-r",
        include_str!("builtin/ollama/command-r.gotmpl"),
        Some(include_str!("builtin/ollama/command-r.json")),
    ),
    (
        "falcon-instruct",
        include_str!("builtin/ollama/falcon-instruct.gotmpl"),
        Some(include_str!("builtin/ollama/falcon-instruct.json")),
    ),
    (
        "gemma-instruct",
        include_str!("builtin/ollama/gemma-instruct.gotmpl"),
        Some(include_str!("builtin/ollama/gemma-instruct.json")),
    ),
    (
        "granite-instruct",
        include_str!("builtin/ollama/granite-instruct.gotmpl"),
        Some(include_str!("builtin/ollama/granite-instruct.json")),
    ),
    (
        "llama2-chat",
        include_str!("builtin/ollama/llama2-chat.gotmpl"),
        Some(include_str!("builtin/ollama/llama2-chat.json")),
    ),
    (
        "llama3-instruct",
        include_str!("builtin/ollama/llama3-instruct.gotmpl"),
        Some(include_str!("builtin/ollama/llama3-instruct.json")),
    ),
    (
        "magicoder",
        include_str!("builtin/ollama/magicoder.gotmpl"),
        Some(include_str!("builtin/ollama/magicoder.json")),
    ),
    (
        "mistral-instruct",
        include_str!("builtin/ollama/mistral-instruct.gotmpl"),
        None,
    ),
    (
        "openchat",
        include_str!("builtin/ollama/openchat.gotmpl"),
        Some(include_str!("builtin/ollama/openchat.json")),
    ),
    (
        "phi-3",
        include_str!("builtin/ollama/phi-3.gotmpl"),
        Some(include_str!("builtin/ollama/phi-3.json")),
    ),
    (
        "solar-instruct",
        include_str!("builtin/ollama/solar-instruct.gotmpl"),
        Some(include_str!("builtin/ollama/solar-instruct.json")),
    ),
    (
        "starcoder2-instruct",
        include_str!("builtin/ollama/starcoder2-instruct.gotmpl"),
        Some(include_str!("builtin/ollama/starcoder2-instruct.json")),
    ),
    (
        "zephyr",
        include_str!("builtin/ollama/zephyr.gotmpl"),
        Some(include_str!("builtin/ollama/zephyr.json")),
    ),
];

const INDEX: &str = include_str!("builtin/ollama/index.json");

/// A built-in template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTemplate {
    pub name: &'static str,
    /// The Go template text (CRLF normalised to LF, as Ollama does).
    pub template: String,
    /// Its default `stop` parameters, when it has a params file.
    pub stop: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct IndexEntry {
    template: String,
    name: String,
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    stop: Vec<String>,
}

struct Index {
    /// Jinja text (as chars) and the position of its template in `templates`.
    entries: Vec<(Vec<char>, usize)>,
    templates: Vec<NamedTemplate>,
}

fn index() -> &'static Index {
    static INDEX_DATA: OnceLock<Index> = OnceLock::new();
    INDEX_DATA.get_or_init(|| {
        // The data is compiled in and checked by the tests, so a failure here is a
        // build defect, not an input error.
        let templates: Vec<NamedTemplate> = FILES
            .iter()
            .map(|(name, t, params)| NamedTemplate {
                name,
                template: t.replace("\r\n", "\n"),
                stop: params.map(|p| {
                    serde_json::from_str::<Params>(p)
                        .expect("built-in template params are valid JSON")
                        .stop
                }),
            })
            .collect();
        let entries: Vec<IndexEntry> =
            serde_json::from_str(INDEX).expect("built-in template index is valid JSON");
        let entries = entries
            .into_iter()
            .map(|e| {
                let at = templates
                    .iter()
                    .position(|t| t.name == e.name)
                    .expect("every index entry names a built-in template");
                (e.template.chars().collect(), at)
            })
            .collect();
        Index { entries, templates }
    })
}

/// The built-in template named `name`.
pub fn builtin(name: &str) -> Option<&'static NamedTemplate> {
    index().templates.iter().find(|t| t.name == name)
}

/// Every built-in template, in Ollama's file order.
pub fn builtins() -> &'static [NamedTemplate] {
    &index().templates
}

/// Ollama's `template.Named`: the built-in template whose index Jinja string is closest
/// to `jinja` (the first one on ties), if the distance is below 100.
pub fn detect(jinja: &str) -> Option<&'static NamedTemplate> {
    let idx = index();
    let s: Vec<char> = jinja.chars().collect();
    let mut best: Option<(usize, usize)> = None;
    for (t, at) in &idx.entries {
        let bound = best.map_or(MAX_DISTANCE, |(d, _)| d.min(MAX_DISTANCE));
        // The length difference is a lower bound of the distance: skipping those keeps
        // the cost bounded whatever the GGUF holds.
        if s.len().abs_diff(t.len()) >= bound {
            continue;
        }
        let d = levenshtein(&s, t);
        if d < bound {
            best = Some((d, *at));
        }
    }
    best.map(|(_, at)| &idx.templates[at])
}

/// Edit distance with unit costs over characters (agnivade/levenshtein on runes).
fn levenshtein(a: &[char], b: &[char]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    let mut row: Vec<usize> = (0..=a.len()).collect();
    for (j, cb) in b.iter().enumerate() {
        let mut prev = row[0];
        row[0] = j + 1;
        for (i, ca) in a.iter().enumerate() {
            let cur = row[i + 1];
            row[i + 1] = if ca == cb {
                prev
            } else {
                1 + prev.min(cur).min(row[i])
            };
            prev = cur;
        }
    }
    row[a.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let d = |a: &str, b: &str| {
            levenshtein(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("flaw", "lawn"), 2);
        assert_eq!(d("héllo", "hello"), 1);
    }

    #[test]
    fn the_data_is_complete_and_parses() {
        assert_eq!(index().entries.len(), 37);
        assert_eq!(builtins().len(), 19);
        for t in builtins() {
            crate::template::Template::parse(&t.template)
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        }
        assert_eq!(
            builtin("chatml").unwrap().stop.as_deref(),
            Some(&["<|im_start|>".to_string(), "<|im_end|>".to_string()][..])
        );
        assert_eq!(builtin("mistral-instruct").unwrap().stop, None);
    }

    #[test]
    fn every_index_string_detects_its_own_name() {
        let raw: Vec<IndexEntry> = serde_json::from_str(INDEX).unwrap();
        for e in raw {
            let t = detect(&e.template).unwrap();
            // Identical strings are distance 0; the first exact match wins.
            assert_eq!(t.name, e.name);
        }
    }

    #[test]
    fn near_misses_match_and_strangers_do_not() {
        let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        let edited = chatml.replace("message['content']", "message.content");
        assert_eq!(detect(&edited).unwrap().name, "chatml");
        assert_eq!(detect("{{ messages }}"), None);
        assert_eq!(detect(""), None);
        // A huge template is rejected by length alone (bounded work).
        assert_eq!(detect(&"x".repeat(1 << 20)), None);
    }
}
