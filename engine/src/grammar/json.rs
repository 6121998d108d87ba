//! The JSON building blocks (llama.cpp's `PRIMITIVE_RULES`), shared by `format: "json"` and
//! the schema compiler. Whitespace is bounded (`space`), numbers have at most 16 digits
//! per part, and strings are valid UTF-8, so a constrained model cannot run away inside a
//! token-level loop of spaces or digits.

use super::{Builder, ByteSet, Expr, Result};

/// Rule ids of the primitives.
pub(crate) struct Prims {
    pub space: u32,
    /// One JSON string character, escapes included.
    pub char: u32,
    pub string: u32,
    pub number: u32,
    pub integer: u32,
    pub boolean: u32,
    pub null: u32,
    pub value: u32,
    pub object: u32,
}

pub(crate) fn hex() -> Expr {
    Expr::Set(
        ByteSet::range(b'0', b'9')
            .union(ByteSet::range(b'a', b'f'))
            .union(ByteSet::range(b'A', b'F')),
    )
}

pub(crate) fn digit() -> Expr {
    Expr::Set(ByteSet::range(b'0', b'9'))
}

/// Any well-formed UTF-8 sequence of 2 to 4 bytes (one non-ASCII character).
pub(crate) fn utf8_multibyte() -> Expr {
    let cont = || Expr::Set(ByteSet::range(0x80, 0xBF));
    let r = |lo, hi| Expr::Set(ByteSet::range(lo, hi));
    Expr::Alt(vec![
        Expr::Seq(vec![r(0xC2, 0xDF), cont()]),
        Expr::Seq(vec![r(0xE0, 0xE0), r(0xA0, 0xBF), cont()]),
        Expr::Seq(vec![
            Expr::Set(ByteSet::range(0xE1, 0xEC).union(ByteSet::range(0xEE, 0xEF))),
            cont(),
            cont(),
        ]),
        Expr::Seq(vec![r(0xED, 0xED), r(0x80, 0x9F), cont()]),
        Expr::Seq(vec![r(0xF0, 0xF0), r(0x90, 0xBF), cont(), cont()]),
        Expr::Seq(vec![r(0xF1, 0xF3), cont(), cont(), cont()]),
        Expr::Seq(vec![r(0xF4, 0xF4), r(0x80, 0x8F), cont(), cont()]),
    ])
}

/// Printable ASCII that needs no escape inside a JSON string.
pub(crate) fn plain_ascii() -> ByteSet {
    let mut s = ByteSet::range(0x20, 0x7E);
    s.remove(b'"');
    s.remove(b'\\');
    s
}

impl Prims {
    pub(crate) fn new(b: &mut Builder) -> Result<Prims> {
        let space = b.rule(Expr::Alt(vec![
            Expr::lit(" "),
            Expr::Seq(vec![
                Expr::lit("\n"),
                Expr::opt(Expr::lit("\n")),
                Expr::repeat(Expr::Set(ByteSet::of(b" \t")), 0, Some(20)),
            ]),
            Expr::Empty,
        ]))?;
        let sp = || Expr::Ref(space);
        let char = b.rule(Expr::Alt(vec![
            Expr::Set(plain_ascii()),
            utf8_multibyte(),
            Expr::Seq(vec![
                Expr::lit("\\"),
                Expr::Alt(vec![
                    Expr::Set(ByteSet::of(b"\"\\/bfnrt")),
                    Expr::Seq(vec![Expr::lit("u"), hex(), hex(), hex(), hex()]),
                ]),
            ]),
        ]))?;
        let string = b.rule(Expr::Seq(vec![
            Expr::lit("\""),
            Expr::star(Expr::Ref(char)),
            Expr::lit("\""),
            sp(),
        ]))?;
        let integral = b.rule(Expr::Alt(vec![
            Expr::lit("0"),
            Expr::Seq(vec![
                Expr::Set(ByteSet::range(b'1', b'9')),
                Expr::repeat(digit(), 0, Some(15)),
            ]),
        ]))?;
        let number = b.rule(Expr::Seq(vec![
            Expr::opt(Expr::lit("-")),
            Expr::Ref(integral),
            Expr::opt(Expr::Seq(vec![
                Expr::lit("."),
                Expr::repeat(digit(), 1, Some(16)),
            ])),
            // Two exponent digits at most (llama.cpp allows 16): 16 digits times 1e99 still
            // fits an f64, which strict parsers such as serde_json require.
            Expr::opt(Expr::Seq(vec![
                Expr::Set(ByteSet::of(b"eE")),
                Expr::opt(Expr::Set(ByteSet::of(b"+-"))),
                Expr::repeat(digit(), 1, Some(2)),
            ])),
            sp(),
        ]))?;
        let integer = b.rule(Expr::Seq(vec![
            Expr::opt(Expr::lit("-")),
            Expr::Ref(integral),
            sp(),
        ]))?;
        let boolean = b.rule(Expr::Seq(vec![
            Expr::Alt(vec![Expr::lit("true"), Expr::lit("false")]),
            sp(),
        ]))?;
        let null = b.rule(Expr::Seq(vec![Expr::lit("null"), sp()]))?;
        let value = b.declare()?;
        let object = b.rule(Expr::Seq(vec![
            Expr::lit("{"),
            sp(),
            Expr::opt(Expr::Seq(vec![
                Expr::Ref(string),
                Expr::lit(":"),
                sp(),
                Expr::Ref(value),
                Expr::star(Expr::Seq(vec![
                    Expr::lit(","),
                    sp(),
                    Expr::Ref(string),
                    Expr::lit(":"),
                    sp(),
                    Expr::Ref(value),
                ])),
            ])),
            Expr::lit("}"),
            sp(),
        ]))?;
        let array = b.rule(Expr::Seq(vec![
            Expr::lit("["),
            sp(),
            Expr::opt(Expr::Seq(vec![
                Expr::Ref(value),
                Expr::star(Expr::Seq(vec![Expr::lit(","), sp(), Expr::Ref(value)])),
            ])),
            Expr::lit("]"),
            sp(),
        ]))?;
        b.define(
            value,
            Expr::Alt(vec![
                Expr::Ref(object),
                Expr::Ref(array),
                Expr::Ref(string),
                Expr::Ref(number),
                Expr::Ref(boolean),
                Expr::Ref(null),
            ]),
        )?;
        Ok(Prims {
            space,
            char,
            string,
            number,
            integer,
            boolean,
            null,
            value,
            object,
        })
    }
}
