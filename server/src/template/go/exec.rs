//! Executes a parsed Go template (the semantics of Go's `text/template/exec.go` with
//! option `missingkey=zero`), bounded by [`Limits`].

use std::rc::Rc;

use super::funcs;
use super::parse::{line_col, Arg, ArgKind, Branch, Command, Node, Pipe, Tree};
use super::value::{MapKind, Value};

/// Bounds on one execution. Exceeding any of them is an error, never a hang or unbounded
/// memory.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of output.
    pub max_output: usize,
    /// Evaluation steps (nodes walked, commands evaluated, loop iterations).
    pub max_steps: u64,
    /// Nesting of control structures and `{{template}}` calls at run time.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_output: 16 << 20,
            max_steps: 10_000_000,
            max_depth: 256,
        }
    }
}

/// An execution error with Go's message format
/// (`template: :LINE:COL: executing "" at <CONTEXT>: MSG`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    pub message: String,
}

type R<T> = Result<T, ExecError>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'a> {
    tree: &'a Tree,
    src: &'a str,
    limits: &'a Limits,
    out: String,
    vars: Vec<(Rc<str>, Value)>,
    steps: u64,
    depth: usize,
    /// The span of the node being evaluated, for error context.
    at: Option<(usize, usize)>,
}

/// Runs `root` (the main body or a cut-down copy of it) of `tree` on `data`.
pub fn execute(
    tree: &Tree,
    src: &str,
    root: &[Node],
    data: Value,
    limits: &Limits,
) -> Result<String, ExecError> {
    let mut s = State {
        tree,
        src,
        limits,
        out: String::new(),
        vars: vec![(Rc::from("$"), data.clone())],
        steps: 0,
        depth: 0,
        at: None,
    };
    s.walk_list(&data, root)?;
    Ok(s.out)
}

impl<'a> State<'a> {
    fn errorf(&self, msg: impl AsRef<str>) -> ExecError {
        let msg = msg.as_ref();
        match self.at {
            None => ExecError {
                message: format!("template: : {msg}"),
            },
            Some((pos, end)) => {
                let pos = pos.min(self.src.len());
                let end = end.clamp(pos, self.src.len());
                let ctx = self.src.get(pos..end).unwrap_or("").trim_end();
                self.errorf_ctx(pos, ctx, msg)
            }
        }
    }

    /// Go's `template: :LINE:COL: executing "" at <CONTEXT>: MSG` (column 0-based, in
    /// bytes; context cut at 20 characters).
    fn errorf_ctx(&self, pos: usize, ctx: &str, msg: &str) -> ExecError {
        let pos = pos.min(self.src.len());
        let (line, _) = line_col(self.src, pos);
        let line_start = self.src[..pos].rfind('\n').map_or(0, |i| i + 1);
        let col = pos - line_start;
        let mut ctx = ctx.to_string();
        if ctx.chars().count() > 20 {
            ctx = format!("{}...", ctx.chars().take(20).collect::<String>());
        }
        ExecError {
            message: format!("template: :{line}:{col}: executing \"\" at <{ctx}>: {msg}"),
        }
    }

    fn at(&mut self, pos: usize, end: usize) {
        self.at = Some((pos, end));
    }

    fn step(&mut self) -> R<()> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(self.errorf(format!(
                "template execution exceeded the limit of {} steps",
                self.limits.max_steps
            )));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > self.limits.max_output {
            return Err(self.errorf(format!(
                "template output exceeded the limit of {} bytes",
                self.limits.max_output
            )));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > self.limits.max_depth {
            return Err(self.errorf(format!(
                "exceeded maximum template depth ({})",
                self.limits.max_depth
            )));
        }
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &[Node]) -> R<Flow> {
        for n in list {
            let f = self.walk(dot, n)?;
            if f != Flow::Normal {
                return Ok(f);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> R<Flow> {
        self.step()?;
        match node {
            Node::Text(t) => {
                self.write(t)?;
                Ok(Flow::Normal)
            }
            Node::Action(pipe) => {
                // Declared variables persist until the enclosing {{end}}.
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.at(pipe.pos, pipe.end);
                    let mut s = String::new();
                    v.print_action(&mut s);
                    self.write(&s)?;
                }
                Ok(Flow::Normal)
            }
            Node::If(b) => self.walk_if_or_with(dot, b, false),
            Node::With(b) => self.walk_if_or_with(dot, b, true),
            Node::Range(b) => self.walk_range(dot, b),
            Node::Template {
                name,
                pipe,
                pos,
                end,
            } => {
                self.at(*pos, *end);
                let Some(body) = self.tree.defs.get(name) else {
                    return Err(self.errorf(format!(
                        "template {} not defined",
                        super::lex::go_quote(name)
                    )));
                };
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Nil,
                };
                self.enter()?;
                // No dynamic scoping: the callee sees only `$`.
                let saved =
                    std::mem::replace(&mut self.vars, vec![(Rc::from("$"), new_dot.clone())]);
                let r = self.walk_list(&new_dot, body);
                self.vars = saved;
                self.depth -= 1;
                r?;
                Ok(Flow::Normal)
            }
            Node::Break => Ok(Flow::Break),
            Node::Continue => Ok(Flow::Continue),
        }
    }

    fn walk_if_or_with(&mut self, dot: &Value, b: &Branch, with: bool) -> R<Flow> {
        self.enter()?;
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let r = if v.truth() {
            if with {
                self.walk_list(&v, &b.list)
            } else {
                self.walk_list(dot, &b.list)
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        r
    }

    fn walk_range(&mut self, dot: &Value, b: &Branch) -> R<Flow> {
        self.enter()?;
        let mark0 = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let items: Vec<(Value, Value)> = match &val {
            Value::List(l) => l
                .items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(m) if m.kind != MapKind::Struct => m
                .sorted_entries()
                .into_iter()
                .map(|e| (Value::Str(e.key.clone()), e.value.clone()))
                .collect(),
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    self.at(b.pipe.pos, b.pipe.end);
                    return Err(self.errorf(format!(
                        "can't use {n} to iterate over more than one variable"
                    )));
                }
                // Counted against the step limit as the loop runs, so a huge count
                // fails instead of allocating.
                let mut ran = false;
                for i in 0..(*n).max(0) {
                    ran = true;
                    self.step()?;
                    let f = self.range_iteration(b, mark, Value::Int(i), Value::Int(i))?;
                    if f == Flow::Break {
                        break;
                    }
                }
                if !ran {
                    if let Some(e) = &b.else_list {
                        self.walk_list(dot, e)?;
                    }
                }
                self.vars.truncate(mark0);
                self.depth -= 1;
                return Ok(Flow::Normal);
            }
            Value::Nil => Vec::new(),
            other => {
                // Go reports this at the range node itself.
                let pipe_src = self
                    .src
                    .get(b.pipe.pos..b.pipe.end)
                    .unwrap_or("")
                    .trim_end();
                let mut s = String::new();
                other.fmt_v(&mut s);
                return Err(self.errorf_ctx(
                    b.pipe.pos,
                    &format!("{{{{range {pipe_src}}}}}"),
                    &format!("range can't iterate over {s}"),
                ));
            }
        };
        if items.is_empty() {
            if let Some(e) = &b.else_list {
                self.walk_list(dot, e)?;
            }
        } else {
            for (index, elem) in items {
                self.step()?;
                if self.range_iteration(b, mark, index, elem)? == Flow::Break {
                    break;
                }
            }
        }
        self.vars.truncate(mark0);
        self.depth -= 1;
        Ok(Flow::Normal)
    }

    fn range_iteration(&mut self, b: &Branch, mark: usize, index: Value, elem: Value) -> R<Flow> {
        let decl = &b.pipe.decl;
        if !decl.is_empty() {
            if b.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0], index.clone())?;
                } else {
                    self.set_var(&decl[0], elem.clone())?;
                }
            } else {
                // The top variable (lexically the last) gets the element.
                let n = self.vars.len();
                self.vars[n - 1].1 = elem.clone();
            }
        }
        if decl.len() > 1 {
            if b.pipe.is_assign {
                self.set_var(&decl[1], elem.clone())?;
            } else {
                let n = self.vars.len();
                self.vars[n - 2].1 = index;
            }
        }
        let r = self.walk_list(&elem, &b.list);
        self.vars.truncate(mark);
        r
    }

    fn set_var(&mut self, name: &str, v: Value) -> R<()> {
        for (n, slot) in self.vars.iter_mut().rev() {
            if &**n == name {
                *slot = v;
                return Ok(());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn var_value(&self, name: &str) -> R<Value> {
        for (n, v) in self.vars.iter().rev() {
            if &**n == name {
                return Ok(v.clone());
            }
        }
        Err(self.errorf(format!("undefined variable: {name}")))
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> R<Value> {
        self.at(pipe.pos, pipe.end);
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let v = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, v.clone())?;
            } else {
                self.vars.push((Rc::from(name.as_str()), v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(&mut self, args: &[Arg], fin: &Option<Value>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            let a = &args[0];
            let text = self.src.get(a.pos..a.end).unwrap_or("").to_string();
            return Err(self.errorf(format!("can't give argument to non-function {text}")));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &Command, fin: Option<Value>) -> R<Value> {
        self.step()?;
        let first = &cmd.args[0];
        self.at(first.pos, first.end);
        match &first.kind {
            ArgKind::Field(idents) => {
                let has_args = cmd.args.len() > 1 || fin.is_some();
                self.eval_field_chain(dot.clone(), idents, has_args, true)
            }
            ArgKind::Chain(node, fields) => {
                let has_args = cmd.args.len() > 1 || fin.is_some();
                let recv = self.eval_chain_receiver(dot, node)?;
                self.at(first.pos, first.end);
                self.eval_field_chain(recv, fields, has_args, false)
            }
            ArgKind::Identifier(name) => self.eval_function(dot, name, &cmd.args[1..], fin),
            ArgKind::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_pipeline(dot, p)
            }
            ArgKind::Variable(idents) => {
                let v = self.var_value(&idents[0])?;
                if idents.len() == 1 {
                    self.not_a_function(&cmd.args, &fin)?;
                    return Ok(v);
                }
                let has_args = cmd.args.len() > 1 || fin.is_some();
                self.eval_field_chain(v, &idents[1..], has_args, true)
            }
            ArgKind::Nil => {
                self.not_a_function(&cmd.args, &fin)?;
                Err(self.errorf("nil is not a command"))
            }
            _ => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_literal(dot, first)
            }
        }
    }

    fn eval_literal(&mut self, dot: &Value, a: &Arg) -> R<Value> {
        Ok(match &a.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Bool(b) => Value::Bool(*b),
            ArgKind::Int(i) => Value::Int(*i),
            ArgKind::Float(f) => Value::Float(*f),
            ArgKind::Str(s) => Value::str(s),
            ArgKind::Nil => Value::Nil,
            _ => return self.eval_arg(dot, a),
        })
    }

    fn eval_chain_receiver(&mut self, dot: &Value, node: &Arg) -> R<Value> {
        if let ArgKind::Nil = node.kind {
            return Err(self.errorf("indirection through explicit nil"));
        }
        self.eval_arg(dot, node)
    }

    /// Evaluates `.A.B.C` on `receiver`. `lenient_start`: a nil starting receiver (an
    /// unset dot or variable) yields nil instead of an error, as Go does for invalid
    /// values; nil met in the middle of the chain (a nil interface from a map) is an
    /// error.
    fn eval_field_chain(
        &mut self,
        receiver: Value,
        idents: &[String],
        has_args: bool,
        lenient_start: bool,
    ) -> R<Value> {
        let mut r = receiver;
        for (i, name) in idents.iter().enumerate() {
            let last = i + 1 == idents.len();
            r = match r {
                Value::Nil if i == 0 && lenient_start => return Ok(Value::Nil),
                Value::Nil => {
                    return Err(self.errorf(format!("nil pointer evaluating interface {{}}.{name}")))
                }
                Value::Map(m) => {
                    match m.kind {
                        MapKind::Struct => match m.get(name) {
                            Some(_) if last && has_args => {
                                return Err(self
                                    .errorf(format!("{name} is not a method but has arguments")))
                            }
                            Some(v) => v.clone(),
                            None => {
                                return Err(self.errorf(format!(
                                    "can't evaluate field {name} in type {}",
                                    m.type_name
                                )))
                            }
                        },
                        MapKind::Map | MapKind::Ordered => {
                            if last && has_args {
                                return Err(self
                                    .errorf(format!("{name} is not a method but has arguments")));
                            }
                            m.get(name).cloned().unwrap_or(Value::Nil)
                        }
                    }
                }
                other => {
                    return Err(self.errorf(format!(
                        "can't evaluate field {name} in type {}",
                        other.type_name()
                    )))
                }
            };
        }
        Ok(r)
    }

    fn eval_arg(&mut self, dot: &Value, a: &Arg) -> R<Value> {
        self.at(a.pos, a.end);
        match &a.kind {
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Ok(Value::Nil),
            ArgKind::Field(idents) => self.eval_field_chain(dot.clone(), idents, false, true),
            ArgKind::Variable(idents) => {
                let v = self.var_value(&idents[0])?;
                if idents.len() == 1 {
                    return Ok(v);
                }
                self.eval_field_chain(v, &idents[1..], false, true)
            }
            ArgKind::Pipe(p) => self.eval_pipeline(dot, p),
            ArgKind::Identifier(name) => self.eval_function(dot, name, &[], None),
            ArgKind::Chain(node, fields) => {
                let recv = self.eval_chain_receiver(dot, node)?;
                self.at(a.pos, a.end);
                self.eval_field_chain(recv, fields, false, false)
            }
            ArgKind::Bool(b) => Ok(Value::Bool(*b)),
            ArgKind::Int(i) => Ok(Value::Int(*i)),
            ArgKind::Float(f) => Ok(Value::Float(*f)),
            ArgKind::Str(s) => Ok(Value::str(s)),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        let (fpos, fend) = self.at.unwrap_or((0, 0));
        if name == "and" || name == "or" {
            // Short-circuit: the first falsy (and) / truthy (or) argument, else the last.
            let n = args.len() + usize::from(fin.is_some());
            if n == 0 {
                return Err(self.errorf(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                )));
            }
            let want = name == "or";
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, a)?;
                if v.truth() == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.eval_arg(dot, a)?);
        }
        if let Some(f) = fin {
            vals.push(f);
        }
        self.at(fpos, fend);
        match funcs::call(name, vals) {
            Ok(v) => Ok(v),
            Err(funcs::CallError::Args(m)) => Err(self.errorf(m)),
            Err(funcs::CallError::Failed(m)) => {
                Err(self.errorf(format!("error calling {name}: {m}")))
            }
        }
    }
}
