//! Model names: `[scheme://]host/namespace/model:tag`, Ollama's grammar and defaults.

use std::fmt;

use super::StoreError;

pub const DEFAULT_HOST: &str = "registry.ollama.ai";
pub const DEFAULT_NAMESPACE: &str = "library";
pub const DEFAULT_TAG: &str = "latest";
pub const DEFAULT_SCHEME: &str = "https";

/// Stands in for a part that a separator promised but that is empty (`x:`, `/x`,
/// `a//b`): never a valid part, so the name is rejected rather than defaulted.
const MISSING: &str = "!MISSING!";

/// A model name with every part present (defaults merged in) and valid, so each part
/// is safe as a single path component: it starts with `[A-Za-z0-9_]` and holds only
/// `[A-Za-z0-9_.-]` (plus `:` in the host), hence no `/`, no `..` component, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelName {
    host: String,
    namespace: String,
    model: String,
    tag: String,
    scheme: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Host,
    Namespace,
    Model,
    Tag,
}

impl ModelName {
    /// Parses a name as Ollama does (right to left), merges the defaults
    /// (`registry.ollama.ai`, `library`, `latest`) and validates every part.
    /// Any invalid part gives [`StoreError::InvalidName`] carrying the input.
    pub fn parse(s: &str) -> Result<ModelName, StoreError> {
        let bare = Bare::parse(s);
        let name = ModelName {
            host: or_default(bare.host, DEFAULT_HOST),
            namespace: or_default(bare.namespace, DEFAULT_NAMESPACE),
            model: bare.model.to_string(),
            tag: or_default(bare.tag, DEFAULT_TAG),
            scheme: bare.scheme.unwrap_or(DEFAULT_SCHEME).to_string(),
        };
        if name.is_valid() {
            Ok(name)
        } else {
            Err(StoreError::InvalidName(s.to_string()))
        }
    }

    /// Builds a name from the four path components of a manifest file
    /// (`manifests/<host>/<namespace>/<model>/<tag>`); `None` if any is invalid.
    pub fn from_parts(host: &str, namespace: &str, model: &str, tag: &str) -> Option<ModelName> {
        let name = ModelName {
            host: host.to_string(),
            namespace: namespace.to_string(),
            model: model.to_string(),
            tag: tag.to_string(),
            scheme: DEFAULT_SCHEME.to_string(),
        };
        name.is_valid().then_some(name)
    }

    fn is_valid(&self) -> bool {
        valid_part(Part::Host, &self.host)
            && valid_part(Part::Namespace, &self.namespace)
            && valid_part(Part::Model, &self.model)
            && valid_part(Part::Tag, &self.tag)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `https` unless the name was written `http://…` (registry clients use it).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The four manifest path components, in order.
    pub fn parts(&self) -> [&str; 4] {
        [&self.host, &self.namespace, &self.model, &self.tag]
    }

    /// The same name with other casing for its parts (from an existing manifest path).
    pub(crate) fn with_parts(&self, parts: [String; 4]) -> ModelName {
        let [host, namespace, model, tag] = parts;
        ModelName {
            host,
            namespace,
            model,
            tag,
            scheme: self.scheme.clone(),
        }
    }

    /// `model:tag`, `namespace/model:tag` or `host/namespace/model:tag`: the form of
    /// `/api/tags`, `/api/ps` and the CLI. Parts equal to the defaults (ignoring case)
    /// are dropped; the tag is always kept.
    pub fn display_shortest(&self) -> String {
        if !self.host.eq_ignore_ascii_case(DEFAULT_HOST) {
            format!(
                "{}/{}/{}:{}",
                self.host, self.namespace, self.model, self.tag
            )
        } else if !self.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE) {
            format!("{}/{}:{}", self.namespace, self.model, self.tag)
        } else {
            format!("{}:{}", self.model, self.tag)
        }
    }

    /// Case-insensitive equality of all four parts (names compare this way).
    pub fn eq_fold(&self, other: &ModelName) -> bool {
        self.parts()
            .iter()
            .zip(other.parts())
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }
}

/// `host/namespace/model:tag`.
impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )
    }
}

fn or_default(part: &str, default: &str) -> String {
    if part.is_empty() {
        default.to_string()
    } else {
        part.to_string()
    }
}

/// A name split into parts without defaults; empty parts are absent, promised but
/// empty ones are [`MISSING`].
struct Bare<'a> {
    host: &'a str,
    namespace: &'a str,
    model: &'a str,
    tag: &'a str,
    scheme: Option<&'a str>,
}

impl<'a> Bare<'a> {
    fn parse(s: &'a str) -> Bare<'a> {
        let mut bare = Bare {
            host: "",
            namespace: "",
            model: "",
            tag: "",
            scheme: None,
        };
        let mut rest = s;
        // A ':' after the last '/' starts the tag; one before it belongs to the host.
        if s.rfind(':').map(|c| Some(c) > s.rfind('/')) == Some(true) {
            let (before, after) = cut_promised(rest, ':').expect("':' is present");
            rest = before;
            bare.tag = after;
        }
        let Some((before, model)) = cut_promised(rest, '/') else {
            bare.model = rest;
            return bare;
        };
        bare.model = model;
        let Some((host, namespace)) = cut_promised(before, '/') else {
            bare.namespace = before;
            return bare;
        };
        bare.namespace = namespace;
        match host.split_once("://") {
            Some((scheme, host)) => {
                bare.scheme = Some(scheme);
                bare.host = host;
            }
            None => bare.host = host,
        }
        bare
    }
}

/// Splits at the last `sep`; an empty side becomes [`MISSING`].
fn cut_promised(s: &str, sep: char) -> Option<(&str, &str)> {
    let i = s.rfind(sep)?;
    Some((or_missing(&s[..i]), or_missing(&s[i + sep.len_utf8()..])))
}

fn or_missing(part: &str) -> &str {
    if part.is_empty() {
        MISSING
    } else {
        part
    }
}

fn valid_part(kind: Part, s: &str) -> bool {
    let max = if kind == Part::Host { 350 } else { 80 };
    if s.is_empty() || s.len() > max {
        return false;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let bytes = s.as_bytes();
    if !word(bytes[0]) {
        return false;
    }
    bytes[1..].iter().all(|&c| match c {
        b'_' | b'-' => true,
        b'.' => kind != Part::Namespace,
        b':' => kind == Part::Host,
        c => word(c),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        ModelName::parse(s)
            .map(|n| n.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn defaults_and_forms() {
        assert_eq!(
            full("llama3.2"),
            "registry.ollama.ai/library/llama3.2:latest"
        );
        assert_eq!(full("user/m:q4"), "registry.ollama.ai/user/m:q4");
        assert_eq!(
            full("example.com:5000/ns/m"),
            "example.com:5000/ns/m:latest"
        );
        let n = ModelName::parse("http://localhost:5000/ns/m:1").unwrap();
        assert_eq!(n.scheme(), "http");
        assert_eq!(n.host(), "localhost:5000");
        assert_eq!(n.tag(), "1");
        assert_eq!(ModelName::parse("a/b/c").unwrap().scheme(), "https");
    }

    #[test]
    fn missing_parts_are_invalid() {
        for s in [
            "", "x:", ":x", "/x", "x/", "a//b", "h//m", "a/b/c/d", "//", ":",
        ] {
            assert!(ModelName::parse(s).is_err(), "{s:?} should be invalid");
        }
    }

    #[test]
    fn part_characters_and_lengths() {
        assert!(ModelName::parse("ns.x/m").is_err(), "no dot in namespace");
        assert!(ModelName::parse("-m").is_err());
        assert!(ModelName::parse(".m").is_err());
        assert!(ModelName::parse("m:.t").is_err());
        assert!(ModelName::parse("m:t:u").is_err());
        assert!(ModelName::parse("_m-1.2:t_3").is_ok());
        assert!(ModelName::parse("m..x").is_ok(), "dots inside are fine");
        assert!(ModelName::parse(&"m".repeat(80)).is_ok());
        assert!(ModelName::parse(&"m".repeat(81)).is_err());
        assert!(ModelName::parse(&format!("m:{}", "t".repeat(81))).is_err());
        assert!(ModelName::parse(&format!("{}/n/m", "h".repeat(350))).is_ok());
        assert!(ModelName::parse(&format!("{}/n/m", "h".repeat(351))).is_err());
        assert!(ModelName::parse("llamä").is_err());
        assert!(ModelName::parse("m\0x").is_err());
        assert!(ModelName::parse("a b").is_err());
    }

    #[test]
    fn shortest_display() {
        let d = |s: &str| ModelName::parse(s).unwrap().display_shortest();
        assert_eq!(d("llama3.2"), "llama3.2:latest");
        assert_eq!(d("Registry.Ollama.AI/Library/M:T"), "M:T");
        assert_eq!(d("user/m"), "user/m:latest");
        assert_eq!(d("example.com/library/m:t"), "example.com/library/m:t");
    }

    #[test]
    fn fold_equality() {
        let a = ModelName::parse("Llama3.2").unwrap();
        let b = ModelName::parse("llama3.2:LATEST").unwrap();
        assert!(a.eq_fold(&b));
        assert_ne!(a, b);
    }
}
