//! A Go `text/template` engine: lexer, parser and executor written to Go's semantics
//! (trim markers, comments, pipelines, variables, `if`/`range`/`with`/`define`/
//! `template`/`block`, `break`/`continue`, Go truthiness, the builtin functions, option
//! `missingkey=zero`) plus Ollama's template functions. Execution is sandboxed by
//! [`Limits`].

mod exec;
mod funcs;
mod lex;
pub(crate) mod parse;
mod value;

pub use exec::{ExecError, Limits};
pub(crate) use funcs::civil_from_days as funcs_civil_from_days;
pub use funcs::FUNCTIONS;
pub use parse::{ParseError, MAX_NESTING};
pub use value::{Entry, List, ListKind, Map, MapKind, Stringer, StructBuilder, Value};

pub(crate) use parse::{ArgKind, Node, Pipe, Tree};

/// A parsed Go template.
#[derive(Clone, Debug)]
pub struct GoTemplate {
    source: String,
    pub(crate) tree: Tree,
}

impl GoTemplate {
    /// Parses `source`. Errors carry Go's message (`template: :3: unexpected EOF`) and
    /// the position.
    pub fn parse(source: &str) -> Result<GoTemplate, ParseError> {
        let tree = parse::parse(source, &funcs::is_function)?;
        Ok(GoTemplate {
            source: source.to_string(),
            tree,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Executes the template on `data` (bound to `.` and `$`).
    pub fn execute(&self, data: &Value, limits: &Limits) -> Result<String, ExecError> {
        exec::execute(
            &self.tree,
            &self.source,
            &self.tree.root,
            data.clone(),
            limits,
        )
    }

    /// Executes a modified copy of the main body (same definitions).
    pub(crate) fn execute_root(
        &self,
        root: &[Node],
        data: &Value,
        limits: &Limits,
    ) -> Result<String, ExecError> {
        exec::execute(&self.tree, &self.source, root, data.clone(), limits)
    }

    /// Every field and variable name the template mentions (Ollama's `Identifiers` walk
    /// over all templates: `.A.B` gives `A` and `B`, `$x.C` gives `$x` and `C`).
    /// Fails like Ollama for a `{{template}}` call without a pipeline.
    pub fn identifiers(&self) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        identifiers(&self.tree.root, &mut out)?;
        let mut names: Vec<&String> = self.tree.defs.keys().collect();
        names.sort();
        for n in names {
            identifiers(&self.tree.defs[n], &mut out)?;
        }
        Ok(out)
    }
}

fn identifiers(nodes: &[Node], out: &mut Vec<String>) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(_) | Node::Break | Node::Continue => {}
            Node::Action(p) => pipe_identifiers(p, out),
            Node::If(b) | Node::Range(b) | Node::With(b) => {
                pipe_identifiers(&b.pipe, out);
                identifiers(&b.list, out)?;
                if let Some(e) = &b.else_list {
                    identifiers(e, out)?;
                }
            }
            Node::Template { pipe, .. } => match pipe {
                Some(p) => pipe_identifiers(p, out),
                None => return Err("undefined template specified".into()),
            },
        }
    }
    Ok(())
}

fn pipe_identifiers(p: &Pipe, out: &mut Vec<String>) {
    for c in &p.cmds {
        for a in &c.args {
            match &a.kind {
                ArgKind::Field(i) | ArgKind::Variable(i) => out.extend(i.iter().cloned()),
                ArgKind::Pipe(p) => pipe_identifiers(p, out),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, data: serde_json::Value) -> Result<String, String> {
        let t = GoTemplate::parse(src).map_err(|e| e.message)?;
        t.execute(&Value::from_json(&data), &Limits::default())
            .map_err(|e| e.message)
    }

    #[test]
    fn basics() {
        let d = serde_json::json!({"A": "x", "L": ["a", "b"], "M": {"k": "v", "a": 1}, "E": ""});
        assert_eq!(
            run("{{ .A }}-{{ .Missing }}", d.clone()).unwrap(),
            "x-<no value>"
        );
        assert_eq!(
            run(
                "{{ range $i, $v := .L }}{{ $i }}={{ $v }};{{ end }}",
                d.clone()
            )
            .unwrap(),
            "0=a;1=b;"
        );
        assert_eq!(
            run(
                "{{ range $k, $v := .M }}{{ $k }}:{{ $v }} {{ end }}",
                d.clone()
            )
            .unwrap(),
            "a:1 k:v "
        );
        assert_eq!(
            run("{{ if .E }}y{{ else if .A }}z{{ end }}", d.clone()).unwrap(),
            "z"
        );
        assert_eq!(
            run("{{ with .M }}{{ .k }}{{ end }}", d.clone()).unwrap(),
            "v"
        );
        assert_eq!(
            run("{{ len .L }} {{ index .L 1 }}", d.clone()).unwrap(),
            "2 b"
        );
        assert_eq!(run("{{ .M }}", d.clone()).unwrap(), "map[a:1 k:v]");
        assert_eq!(
            run("{{ json .M }}", d.clone()).unwrap(),
            r#"{"a":1,"k":"v"}"#
        );
        assert_eq!(
            run(
                "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
                d.clone()
            )
            .unwrap(),
            "2"
        );
        assert_eq!(
            run("{{ range .L }}{{ if eq . \"a\" }}{{ continue }}{{ end }}{{ . }}{{ break }}{{ end }}", d.clone()).unwrap(),
            "b"
        );
        assert_eq!(
            run("{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .A }}{{ block \"b\" .E }}B{{ end }}", d.clone()).unwrap(),
            "[x]B"
        );
        assert_eq!(run("{{ .A | printf \"%s!\" }}", d.clone()).unwrap(), "x!");
        assert_eq!(
            run("{{ (index .L 0) }}{{ slice .L 1 }}", d.clone()).unwrap(),
            "a[b]"
        );
        assert_eq!(
            run("{{ and 1 0 2 }} {{ or 0 \"\" 3 }}", d.clone()).unwrap(),
            "0 3"
        );
        assert_eq!(run("{{ range 3 }}{{ . }}{{ end }}", d).unwrap(), "012");
    }

    #[test]
    fn exec_errors_like_go() {
        let d = serde_json::json!({"L": [1]});
        assert_eq!(
            run("{{ .Foo.Bar }}", d.clone()).unwrap_err(),
            "template: :1:3: executing \"\" at <.Foo.Bar>: nil pointer evaluating interface {}.Bar"
        );
        assert_eq!(
            run("{{ index .L 5 }}", d.clone()).unwrap_err(),
            "template: :1:3: executing \"\" at <index>: error calling index: index out of range: 5"
        );
        assert_eq!(
            run("{{ template \"nope\" . }}", d).unwrap_err(),
            "template: :1:3: executing \"\" at <template \"nope\" .>: template \"nope\" not defined"
        );
    }
}
