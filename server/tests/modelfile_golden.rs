//! Modelfile parsing and rendering: the examples of the spec (modelfile.md) and
//! Ollama's lexer behaviour, as golden inputs and outputs.

use std::path::Path;

use ferrite_server::create::License as ReqLicense;
use ferrite_server::modelfile::{
    parse_parameter, quote, Instruction, Modelfile, ModelfileError, ERR_INVALID_COMMAND,
    ERR_INVALID_ROLE,
};
use ferrite_server::store::Message as ApiMessage;
use serde_json::json;

use Instruction::*;

fn parse(s: &str) -> Vec<Instruction> {
    Modelfile::parse(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .instructions
}

fn parse_err(s: &str) -> String {
    Modelfile::parse(s).unwrap_err().to_string()
}

fn from(s: &str) -> Instruction {
    From(s.into())
}

fn param(n: &str, v: &str) -> Instruction {
    Parameter {
        name: n.into(),
        value: v.into(),
    }
}

#[test]
fn spec_quoting_examples() {
    assert_eq!(
        parse("FROM x\nSYSTEM \"\"\"You are\nhelpful\"\"\""),
        [from("x"), System("You are\nhelpful".into())]
    );
    assert_eq!(
        parse("FROM x\nPARAMETER stop \"<|eot_id|>\"\nPARAMETER stop <|eot_id|>\n"),
        [
            from("x"),
            param("stop", "<|eot_id|>"),
            param("stop", "<|eot_id|>")
        ]
    );
}

#[test]
fn keywords_are_case_insensitive_and_comments_skip_lines() {
    let got = parse("# a comment\nfrom a\n  From b\n\tFROM c # not a comment\nsystem s\n");
    assert_eq!(
        got,
        [
            from("a"),
            from("b"),
            from("c # not a comment"),
            System("s".into())
        ]
    );
}

#[test]
fn full_modelfile() {
    let input = r#"
FROM model1
ADAPTER adapter1
LICENSE MIT
PARAMETER temperature 0.7
PARAMETER stop <|start_header_id|>
TEMPLATE """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

{{ .Response }}<|eot_id|>"""    
MESSAGE user Is Toronto in Canada?
MESSAGE assistant yes
REQUIRES 0.14.0
RENDERER r1
PARSER p1
DRAFT ./d
"#;
    assert_eq!(
        parse(input),
        [
            from("model1"),
            Adapter("adapter1".into()),
            License("MIT".into()),
            param("temperature", "0.7"),
            param("stop", "<|start_header_id|>"),
            Template("{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>".into()),
            Message { role: "user".into(), content: "Is Toronto in Canada?".into() },
            Message { role: "assistant".into(), content: "yes".into() },
            Requires("0.14.0".into()),
            Renderer("r1".into()),
            Parser("p1".into()),
            Draft("./d".into()),
        ]
    );
}

#[test]
fn values_are_trimmed_and_quotes_keep_spaces() {
    assert_eq!(parse("FROM \"     model 1\""), [from("     model 1")]);
    assert_eq!(parse("FROM     FOOO BAR    "), [from("FOOO BAR")]);
    assert_eq!(
        parse("FROM /what/is/the path "),
        [from("/what/is/the path")]
    );
    assert_eq!(
        parse("FROM x\nLICENSE \"MIT       \"\nPARAMETER p        v\n"),
        [from("x"), License("MIT       ".into()), param("p", "v")]
    );
    assert_eq!(
        parse("PARAMETER what the \nFROM lemons make lemonade "),
        [param("what", "the"), from("lemons make lemonade")]
    );
}

#[test]
fn quoted_forms() {
    let cases: &[(&str, &str)] = &[
        (
            "SYSTEM \"\"\"\nThis is a\nmultiline system.\n\"\"\"\n",
            "\nThis is a\nmultiline system.\n",
        ),
        (
            "SYSTEM \"\"\"This is a\nmultiline system.\"\"\"\n",
            "This is a\nmultiline system.",
        ),
        (
            "SYSTEM \"\"\"\nwith \"quotes\".\n\"\"\"\n",
            "\nwith \"quotes\".\n",
        ),
        ("SYSTEM \"\"\"\"\"\"\n", ""),
        ("SYSTEM \"\"\n", ""),
        ("SYSTEM \"'\"\n", "'"),
        ("SYSTEM \"two\nlines\"\n", "two\nlines"),
        (
            "SYSTEM \"\"\"''\"'\"\"'\"\"'\"'''''\"\"'\"\"'\"\"\"\n",
            "''\"'\"\"'\"\"'\"'''''\"\"'\"\"'",
        ),
        ("SYSTEM no \\n escapes\n", "no \\n escapes"),
        ("SYSTEM 你好👋\n", "你好👋"),
        ("SYSTEM a\tb\n", "a\tb"),
    ];
    for (body, want) in cases {
        let src = format!("FROM foo\n{body}");
        assert_eq!(
            parse(&src),
            [from("foo"), System(want.to_string())],
            "{body:?}"
        );
    }
    // A template ending at EOF without a newline.
    assert_eq!(
        parse("FROM foo\nTEMPLATE \"\"\"\n{{ .Prompt }}\n\"\"\""),
        [from("foo"), Template("\n{{ .Prompt }}\n".into())]
    );
}

#[test]
fn non_printable_runes_are_dropped_like_ollama() {
    // Go's strconv.IsPrint filter: a zero-width joiner and NBSP vanish.
    assert_eq!(
        parse("FROM x\nSYSTEM a\u{200D}b\u{A0}c\n"),
        [from("x"), System("abc".into())]
    );
}

#[test]
fn messages() {
    assert_eq!(
        parse("FROM foo\nMESSAGE system You are a file parser. Always parse things."),
        [
            from("foo"),
            Message {
                role: "system".into(),
                content: "You are a file parser. Always parse things.".into()
            }
        ]
    );
    assert_eq!(
        parse("FROM foo\nMESSAGE system \"\"\"\nmultiline\n\"\"\"\n\t\t\t"),
        [
            from("foo"),
            Message {
                role: "system".into(),
                content: "\nmultiline\n".into()
            }
        ]
    );
    assert_eq!(
        parse_err("FROM foo\nMESSAGE badguy I'm a bad guy!\n"),
        format!("(line 2): {ERR_INVALID_ROLE}")
    );
    assert_eq!(
        parse_err("FROM foo\nMESSAGE User hi\n"),
        format!("(line 2): {ERR_INVALID_ROLE}")
    );
    assert_eq!(
        parse_err("FROM foo\nMESSAGE system\n"),
        "(line 2): unexpected EOF: system"
    );
    assert_eq!(
        parse_err("FROM foo\nMESSAGE system"),
        "(line 2): unexpected EOF: system"
    );
}

#[test]
fn errors_with_line_numbers() {
    assert_eq!(
        parse_err("\nFROM foo\nBADCOMMAND param1 value1\n"),
        format!("(line 3): {ERR_INVALID_COMMAND}")
    );
    assert_eq!(
        parse_err("FROM foo\nFROM\n"),
        format!("(line 2): {ERR_INVALID_COMMAND}")
    );
    assert_eq!(
        parse_err("FROM foo\r\n\r\nBAD x\r\n"),
        format!("(line 3): {ERR_INVALID_COMMAND}")
    );
    assert_eq!(
        parse_err("FROM foo\nFROM2 x\n"),
        format!("(line 2): {ERR_INVALID_COMMAND}")
    );
    assert_eq!(
        parse_err("\nFROM foo\nPARAMETER param1\n"),
        "(line 3): unexpected EOF: param1"
    );
    assert_eq!(
        parse_err("FROM foo\nPARAMETER p-x 1\n"),
        "(line 2): unexpected EOF: p"
    );
    assert_eq!(
        parse_err("FROM foo\nSYSTEM \"\"\"never closed\n\n"),
        "(line 2): unexpected EOF"
    );
    assert_eq!(
        parse_err("FROM foo\nSYSTEM \"\n\t\t\t"),
        "(line 2): unexpected EOF"
    );
    assert_eq!(
        parse_err("FROM foo\nSYSTEM \"\"\"This is a multiline system.\"\"\n"),
        "(line 2): unexpected EOF"
    );
    assert_eq!(parse_err("FROM"), "(line 1): unexpected EOF: FROM");
    assert_eq!(parse_err(""), "no FROM line");
    assert_eq!(parse_err("PARAMETER param1 value1"), "no FROM line");
    assert_eq!(parse_err("# only a comment"), "no FROM line");
}

#[test]
fn byte_order_marks() {
    let text = "FROM bob\nPARAMETER param1 1\nSYSTEM You are a utf16 file. 你好👋\n";
    let want = [
        from("bob"),
        param("param1", "1"),
        System("You are a utf16 file. 你好👋".into()),
    ];
    let mut le = vec![0xFF, 0xFE];
    let mut be = vec![0xFE, 0xFF];
    for u in text.encode_utf16() {
        le.extend(u.to_le_bytes());
        be.extend(u.to_be_bytes());
    }
    let mut utf8 = vec![0xEF, 0xBB, 0xBF];
    utf8.extend(text.as_bytes());
    for bytes in [le, be, utf8, text.as_bytes().to_vec()] {
        assert_eq!(Modelfile::parse_bytes(&bytes).unwrap().instructions, want);
    }
}

#[test]
fn parameter_types_and_errors() {
    assert_eq!(parse_parameter("num_ctx", "4096").unwrap(), json!(4096));
    assert_eq!(parse_parameter("seed", "-1").unwrap(), json!(-1));
    assert_eq!(parse_parameter("temperature", "0.7").unwrap(), json!(0.7));
    assert_eq!(parse_parameter("top_p", "1").unwrap(), json!(1.0));
    assert_eq!(parse_parameter("min_p", "0.05").unwrap(), json!(0.05));
    assert_eq!(parse_parameter("use_mmap", "True").unwrap(), json!(true));
    assert_eq!(parse_parameter("use_mmap", "0").unwrap(), json!(false));
    assert_eq!(
        parse_parameter("stop", "### User:").unwrap(),
        json!(["### User:"])
    );
    let err = |n: &str, v: &str| parse_parameter(n, v).unwrap_err().to_string();
    assert_eq!(err("num_ctx", "4k"), "invalid int value [4k]");
    assert_eq!(err("num_ctx", "1.5"), "invalid int value [1.5]");
    assert_eq!(err("temperature", "hot"), "invalid float value [hot]");
    assert_eq!(err("temperature", "NaN"), "invalid float value [NaN]");
    assert_eq!(err("use_mmap", "yes"), "invalid bool value [yes]");
    assert_eq!(err("tfs_z", "1"), "unknown parameter 'tfs_z'");
    assert_eq!(err("num_gqa", "1"), "unknown parameter 'num_gqa'");
    assert_eq!(err("Temperature", "1"), "unknown parameter 'Temperature'");
    for (name, value) in [
        ("num_batch", "1"),
        ("num_gpu", "1"),
        ("main_gpu", "1"),
        ("num_thread", "1"),
        ("draft_num_predict", "1"),
        ("num_keep", "1"),
        ("num_predict", "1"),
        ("top_k", "1"),
        ("typical_p", "1.0"),
        ("repeat_last_n", "1"),
        ("repeat_penalty", "1.0"),
        ("presence_penalty", "1.0"),
        ("frequency_penalty", "1.0"),
    ] {
        assert!(parse_parameter(name, value).is_ok(), "{name}");
    }
}

#[test]
fn create_request_from_modelfile() {
    let mf = Modelfile::parse(
        "FROM test\nPARAMETER temperature 0.5\nPARAMETER top_k 1\nPARAMETER stop <|a|>\nPARAMETER stop \"<|b|>\"\nPARAMETER mirostat 1\nSYSTEM You are a bot.\nLICENSE license1\nLICENSE license2\nMESSAGE user Hello there!\nMESSAGE assistant Hi! How are you?\nREQUIRES v0.14.0\n",
    )
    .unwrap();
    let p = mf.to_create_request(Path::new("/nonexistent-dir")).unwrap();
    let r = &p.request;
    assert_eq!(r.from, "test");
    assert_eq!(r.files, None);
    assert_eq!(r.system, "You are a bot.");
    assert_eq!(r.requires, "0.14.0");
    assert_eq!(
        r.license,
        Some(ReqLicense::Many(vec!["license1".into(), "license2".into()]))
    );
    assert_eq!(
        serde_json::to_string(r.parameters.as_ref().unwrap()).unwrap(),
        r#"{"stop":["<|a|>","<|b|>"],"temperature":0.5,"top_k":1}"#
    );
    assert_eq!(
        r.messages,
        [
            ApiMessage::new("user", "Hello there!"),
            ApiMessage::new("assistant", "Hi! How are you?")
        ]
    );
    assert_eq!(p.warnings, ["warning: parameter mirostat is deprecated"]);
    assert!(p.uploads.is_empty());

    let bad = |s: &str| {
        Modelfile::parse(s)
            .unwrap()
            .to_create_request(Path::new("/"))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        bad("FROM x\nPARAMETER foo 1\n"),
        "(line 2): unknown parameter 'foo'"
    );
    assert_eq!(
        bad("FROM x\n\nPARAMETER num_ctx big\n"),
        "(line 3): invalid int value [big]"
    );
    assert_eq!(
        bad("FROM x\nREQUIRES 0.x\n"),
        "(line 2): requires must be a valid semver (e.g. 0.14.0)"
    );
}

#[test]
fn local_files_are_hashed_relative_to_the_modelfile() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("first.gguf"), b"first").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/ad.gguf"), b"adapter").unwrap();
    let mf = Modelfile::parse("FROM ./first.gguf\nADAPTER sub/ad.gguf\n").unwrap();
    let p = mf.to_create_request(dir.path()).unwrap();
    let sha = |b: &[u8]| ferrite_server::store::Digest::of_bytes(b).to_string();
    assert_eq!(p.request.from, "");
    assert_eq!(
        p.request.files.as_ref().unwrap().get("first.gguf"),
        Some(&sha(b"first"))
    );
    assert_eq!(
        p.request.adapters.as_ref().unwrap().get("ad.gguf"),
        Some(&sha(b"adapter"))
    );
    assert_eq!(p.uploads.len(), 2);
    // A directory contributes its GGUF files; a missing ADAPTER is an error.
    let p = Modelfile::parse("FROM .\n")
        .unwrap()
        .to_create_request(dir.path())
        .unwrap();
    assert_eq!(p.request.files.unwrap().len(), 1);
    let err = Modelfile::parse("FROM x\nADAPTER ./missing.gguf\n")
        .unwrap()
        .to_create_request(dir.path())
        .unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn render_round_trips() {
    let cases = [
        "FROM foo\nADAPTER adapter1\nLICENSE MIT\nPARAMETER param1 value1\nTEMPLATE template1\nMESSAGE system You are a file parser. Always parse things.\nMESSAGE user Hey there!\n",
        "FROM foo\nMESSAGE system \"\"\"\nYou are a store greeter. Always respond with \"Hello!\".\n\"\"\"\nMESSAGE user Hey there!\n",
        "FROM foo\nLICENSE \"\"\"\nVery long and boring legal text.\nBlah blah blah.\n\"Oh look, a quote!\"\n\"\"\"\n\nPARAMETER param1 value1\n",
        "FROM foo\nSYSTEM \"\"\n",
        "FROM foo\nSYSTEM \" padded \"\nPARAMETER stop \"\"\"\n\"\"\"\n",
    ];
    for c in cases {
        let m = Modelfile::parse(c).unwrap();
        let text = m.to_string();
        assert_eq!(
            Modelfile::parse(&text).unwrap().instructions,
            m.instructions,
            "{text}"
        );
    }
    let m = Modelfile::new(vec![
        from("/x/blobs/sha256-1"),
        Template("{{ .Prompt }}".into()),
        System("line1\nline2".into()),
        param("stop", "<|eot_id|>"),
        License("has \"quotes\"\nand lines".into()),
        Message {
            role: "user".into(),
            content: " hi".into(),
        },
    ]);
    assert_eq!(
        m.to_string(),
        "FROM /x/blobs/sha256-1\nTEMPLATE {{ .Prompt }}\nSYSTEM \"line1\nline2\"\nPARAMETER stop <|eot_id|>\nLICENSE \"\"\"has \"quotes\"\nand lines\"\"\"\nMESSAGE user \" hi\"\n"
    );
    assert_eq!(quote("plain"), "plain");
    assert_eq!(quote("a\tb"), "a\tb");
}

#[test]
fn error_type_exposes_line() {
    let e: ModelfileError = Modelfile::parse("FROM a\nNOPE b\n").unwrap_err();
    assert_eq!(e.line, Some(2));
    assert_eq!(e.message, ERR_INVALID_COMMAND);
}
