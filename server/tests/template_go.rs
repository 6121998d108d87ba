//! The Go template engine on its own: syntax, semantics, whitespace trimming, functions,
//! errors and limits. Expected outputs follow Go's `text/template` rules.

use ferrite_server::template::go::{GoTemplate, Limits, Value};

fn run_with(src: &str, data: serde_json::Value, limits: &Limits) -> Result<String, String> {
    let t = GoTemplate::parse(src).map_err(|e| e.message)?;
    t.execute(&Value::from_json(&data), limits)
        .map_err(|e| e.message)
}

fn run(src: &str, data: serde_json::Value) -> Result<String, String> {
    run_with(src, data, &Limits::default())
}

fn ok(src: &str, data: serde_json::Value) -> String {
    run(src, data).unwrap_or_else(|e| panic!("{src:?}: {e}"))
}

fn data() -> serde_json::Value {
    serde_json::json!({
        "S": "str", "E": "", "N": 3, "Z": 0, "F": 2.5, "T": true, "Fa": false,
        "L": ["a", "b", "c"], "EL": [], "M": {"b": 2, "a": 1}, "EM": {},
        "Nested": {"Inner": {"Deep": "x"}}, "Null": null, "Big": 1234567,
        "Html": "<a href=\"x\">&'</a>"
    })
}

#[test]
fn whitespace_trimming() {
    let d = data();
    assert_eq!(ok("a \t\n{{- .S -}}\n\t b", d.clone()), "astrb");
    assert_eq!(ok("a {{- .S }} b", d.clone()), "astr b");
    assert_eq!(ok("a {{ .S -}} b", d.clone()), "a strb");
    // A dash without a following space is a negative number, not a trim marker.
    assert_eq!(ok("x {{-3}} y", d.clone()), "x -3 y");
    assert_eq!(ok("x {{3 -}} y", d.clone()), "x 3y");
    assert_eq!(ok("a\r\n{{- 1 }}", d.clone()), "a1");
    assert_eq!(ok("a {{- /* c */ -}} b", d.clone()), "ab");
    assert_eq!(ok("a {{/* c\nmultiline */}} b", d.clone()), "a  b");
    assert_eq!(ok("{{ if\n  .T\n}}x{{ end }}", d.clone()), "x");
    // Trimming swallows every kind of whitespace, across lines, up to other text only.
    assert_eq!(
        ok(
            "x\n\n  \n{{- if .T -}}\n\n  y  \n{{- end -}}\n\nz",
            d.clone()
        ),
        "xyz"
    );
    // Declarations print nothing; their line breaks stay unless trimmed.
    assert_eq!(ok("{{ $x := 1 }}\n{{- $x }}", d.clone()), "1");
    assert_eq!(ok("{{ $x := 1 }}\n{{ $x }}", d), "\n1");
}

#[test]
fn fields_and_variables() {
    let d = data();
    assert_eq!(
        ok("{{ .S }}|{{ .Nested.Inner.Deep }}|{{ $.S }}", d.clone()),
        "str|x|str"
    );
    assert_eq!(
        ok(
            "{{ with .Nested }}{{ .Inner.Deep }}{{ $.S }}{{ end }}",
            d.clone()
        ),
        "xstr"
    );
    // missingkey=zero on map[string]any: a missing key prints "<no value>".
    assert_eq!(ok("[{{ .Missing }}]", d.clone()), "[<no value>]");
    assert_eq!(ok("[{{ .Null }}]", d.clone()), "[<no value>]");
    assert_eq!(
        ok("{{ $v := .Missing }}[{{ $v }}]", d.clone()),
        "[<no value>]"
    );
    assert_eq!(ok("{{ print .Missing }}", d.clone()), "<nil>");
    assert_eq!(
        ok("{{ .M.missing }}|{{ index .M \"a\" }}", d.clone()),
        "<no value>|1"
    );
    assert_eq!(
        ok(
            "{{ $x := \"a\" }}{{ range .L }}{{ $x = . }}{{ end }}{{ $x }}",
            d.clone()
        ),
        "c"
    );
    // Variables declared in a block end with it.
    assert_eq!(
        run("{{ if .T }}{{ $y := 1 }}{{ end }}{{ $y }}", d.clone()).unwrap_err(),
        "template: :1: undefined variable \"$y\""
    );
    assert_eq!(
        ok("{{ (index .L 1) }}{{ (.Nested).Inner.Deep }}", d.clone()),
        "bx"
    );
    assert_eq!(
        ok(
            "{{ .F }} {{ .Big }} {{ .N }} {{ 1.0 }} {{ 1e6 }} {{ 0x1F }} {{ 'a' }}",
            d
        ),
        "2.5 1.234567e+06 3 1 1e+06 31 97"
    );
}

#[test]
fn truthiness_and_control() {
    let d = data();
    for (expr, want) in [
        (".S", true),
        (".E", false),
        (".N", true),
        (".Z", false),
        (".F", true),
        (".T", true),
        (".Fa", false),
        (".L", true),
        (".EL", false),
        (".M", true),
        (".EM", false),
        (".Null", false),
        (".Missing", false),
    ] {
        let src = format!("{{{{ if {expr} }}}}y{{{{ else }}}}n{{{{ end }}}}");
        assert_eq!(ok(&src, d.clone()), if want { "y" } else { "n" }, "{expr}");
    }
    assert_eq!(
        ok(
            "{{ if .Z }}1{{ else if .E }}2{{ else if .S }}3{{ else }}4{{ end }}",
            d.clone()
        ),
        "3"
    );
    assert_eq!(
        ok(
            "{{ with .E }}x{{ else with .S }}{{ . }}{{ end }}",
            d.clone()
        ),
        "str"
    );
    assert_eq!(
        ok("{{ range .EL }}x{{ else }}empty{{ end }}", d.clone()),
        "empty"
    );
    assert_eq!(
        ok("{{ range .Missing }}x{{ else }}none{{ end }}", d.clone()),
        "none"
    );
    assert_eq!(
        ok(
            "{{ range $i, $v := .L }}{{ $i }}{{ $v }}{{ end }}",
            d.clone()
        ),
        "0a1b2c"
    );
    assert_eq!(
        ok("{{ range $v := .L }}{{ $v }}{{ end }}", d.clone()),
        "abc"
    );
    assert_eq!(
        ok(
            "{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}",
            d.clone()
        ),
        "a=1;b=2;"
    );
    assert_eq!(ok("{{ range .M }}{{ . }}{{ end }}", d.clone()), "12");
    assert_eq!(
        ok("{{ range .L }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ if eq . \"c\" }}{{ break }}{{ end }}{{ . }}{{ end }}", d.clone()),
        "a"
    );
    assert_eq!(
        ok(
            "{{ range $i, $_ := .L }}{{ range $.L }}{{ break }}{{ end }}{{ $i }}{{ end }}",
            d.clone()
        ),
        "012"
    );
    assert_eq!(
        ok(
            "{{ range 3 }}{{ . }}{{ end }}{{ range 0 }}x{{ else }}none{{ end }}",
            d.clone()
        ),
        "012none"
    );
    assert_eq!(
        ok("{{ define \"item\" }}<{{ . }}>{{ end }}{{ range .L }}{{ template \"item\" . }}{{ end }}", d.clone()),
        "<a><b><c>"
    );
    assert_eq!(
        ok("{{ block \"b\" .S }}[{{ . }}]{{ end }}", d.clone()),
        "[str]"
    );
    // A later empty definition does not replace a non-empty one.
    assert_eq!(
        ok(
            "{{ define \"x\" }}X{{ end }}{{ define \"x\" }}{{ end }}{{ template \"x\" }}",
            d
        ),
        "X"
    );
}

#[test]
fn builtin_functions() {
    let d = data();
    assert_eq!(
        ok(
            "{{ and .T .S }}|{{ and .S .Z .T }}|{{ or .E .Z }}|{{ or .E .S }}",
            d.clone()
        ),
        "str|0|0|str"
    );
    // and/or short-circuit: the failing index is never evaluated.
    assert_eq!(
        ok(
            "{{ and .Fa (index .L 99) }}|{{ or .T (index .L 99) }}",
            d.clone()
        ),
        "false|true"
    );
    assert_eq!(ok("{{ not .E }} {{ not .L }}", d.clone()), "true false");
    assert_eq!(
        ok(
            "{{ len .L }} {{ len .S }} {{ len .M }} {{ len \"é\" }}",
            d.clone()
        ),
        "3 3 2 2"
    );
    assert_eq!(
        ok(
            "{{ index .L 2 }} {{ index .Nested \"Inner\" \"Deep\" }} {{ index .S 0 }}",
            d.clone()
        ),
        "c x 115"
    );
    assert_eq!(
        ok(
            "{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice .S 1 }} {{ slice .L }}",
            d.clone()
        ),
        "[b c] [b] tr [a b c]"
    );
    assert_eq!(
        ok(
            "{{ eq .S \"x\" \"str\" }} {{ eq .N 3.0 }} {{ ne .S \"str\" }} {{ eq .Missing \"a\" }}",
            d.clone()
        ),
        "true true false false"
    );
    assert_eq!(
        ok(
            "{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}",
            d.clone()
        ),
        "true true true false"
    );
    assert_eq!(
        ok("{{ print 1 2 \"a\" 3 \"b\" \"c\" }}", d.clone()),
        "1 2a3bc"
    );
    assert_eq!(ok("{{ println \"a\" 1 }}", d.clone()), "a 1\n");
    assert_eq!(
        ok(
            "{{ printf \"%s=%v %q %v %5.2f|%-4s|\" .S .N .S .L .F \"x\" }}",
            d.clone()
        ),
        "str=3 \"str\" [a b c]  2.50|x   |"
    );
    assert_eq!(ok("{{ printf \"%d\" .S }}", d.clone()), "%!d(string=str)");
    assert_eq!(ok("{{ .S | printf \"%s-%s\" \"x\" }}", d.clone()), "x-str");
    assert_eq!(
        ok("{{ html .Html }}", d.clone()),
        "&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt;"
    );
    assert_eq!(
        ok("{{ js \"it's <b>\" }}", d.clone()),
        "it\\'s \\u003Cb\\u003E"
    );
    assert_eq!(ok("{{ urlquery \"a b&c\" }}", d.clone()), "a+b%26c");
    assert_eq!(
        ok(
            "{{ json .M }} {{ json .L }} {{ json .Html }} {{ json .F }} {{ json .Null }}",
            d.clone()
        ),
        r#"{"a":1,"b":2} ["a","b","c"] "\u003ca href=\"x\"\u003e\u0026'\u003c/a\u003e" 2.5 null"#
    );
    let date = ok("{{ currentDate }}", d.clone());
    assert_eq!(date.len(), 10);
    assert_eq!(&date[4..5], "-");
    assert_eq!(ok("{{ currentDate \"ignored\" }}", d.clone()), date);
    assert_ne!(ok("{{ yesterdayDate }}", d.clone()), date);
    assert_eq!(ok("{{ toTypeScriptType .S }}", d), "any");
}

#[test]
fn parse_errors_like_go() {
    let d = data();
    let err = |s: &str| run(s, d.clone()).unwrap_err();
    assert_eq!(err("{{ .S"), "template: :1: unclosed action");
    assert_eq!(err("{{ if .S }}x"), "template: :1: unexpected EOF");
    assert_eq!(
        err("a\nb\n{{ foo .S }}"),
        "template: :3: function \"foo\" not defined"
    );
    assert_eq!(err("{{ end }}"), "template: :1: unexpected {{end}}");
    assert_eq!(err("{{ else }}"), "template: :1: unexpected {{else}}");
    assert_eq!(err("{{ $x }}"), "template: :1: undefined variable \"$x\"");
    assert_eq!(
        err("{{ continue }}"),
        "template: :1: {{continue}} outside {{range}}"
    );
    assert_eq!(err("{{/* open"), "template: :1: unclosed comment");
    assert_eq!(
        err("{{ \"abc }}"),
        "template: :1: unterminated quoted string"
    );
    assert_eq!(err("{{ (.S }}"), "template: :1: unclosed left paren");
    assert_eq!(
        err("{{ .S) }}"),
        "template: :1: unexpected \")\" in command"
    );
    assert_eq!(
        err("{{ if }}{{ end }}"),
        "template: :1: missing value for if"
    );
    assert_eq!(
        err("{{ .S | 1 }}"),
        "template: :1: non executable command in pipeline stage 2"
    );
    assert_eq!(
        err("{{ \"a\".B }}"),
        "template: :1: unexpected . after term \"\\\"a\\\"\""
    );
    assert_eq!(
        err("{{ 99999999999999999999 }}"),
        "template: :1: 99999999999999999999 overflows int"
    );
    assert_eq!(
        err("{{ define \"a\" }}1{{ end }}{{ define \"a\" }}2{{ end }}"),
        "template: :1: template: multiple definition of template \"a\""
    );
    // Positions: the error names the line, the ParseError also the column.
    let e = GoTemplate::parse("ok\n  {{ nope }}").unwrap_err();
    assert_eq!((e.line, e.column), (2, 6));
    // Deep nesting is refused before it can exhaust the stack.
    let deep = "{{ if 1 }}".repeat(300) + &"{{ end }}".repeat(300);
    assert!(err(&deep).contains("max nesting depth exceeded"));
    let parens = "{{ ".to_string() + &"(".repeat(300) + "1" + &")".repeat(300) + " }}";
    assert!(err(&parens).contains("max nesting depth exceeded"));
}

#[test]
fn exec_errors_like_go() {
    let d = data();
    let err = |s: &str| run(s, d.clone()).unwrap_err();
    assert_eq!(
        err("{{ .Missing.Field }}"),
        "template: :1:3: executing \"\" at <.Missing.Field>: nil pointer evaluating interface {}.Field"
    );
    assert_eq!(
        err("{{ .S.Field }}"),
        "template: :1:3: executing \"\" at <.S.Field>: can't evaluate field Field in type string"
    );
    assert_eq!(
        err("{{ index .L 7 }}"),
        "template: :1:3: executing \"\" at <index>: error calling index: index out of range: 7"
    );
    assert_eq!(
        err("{{ len .N }}"),
        "template: :1:3: executing \"\" at <len>: error calling len: len of type float64"
    );
    assert_eq!(
        err("{{ eq .N \"3\" }}"),
        "template: :1:3: executing \"\" at <eq>: error calling eq: incompatible types for comparison"
    );
    assert_eq!(
        err("{{ len .L .L }}"),
        "template: :1:3: executing \"\" at <len>: wrong number of args for len: want 1 got 2"
    );
    assert_eq!(
        err("{{ .S 1 }}"),
        "template: :1:3: executing \"\" at <.S>: S is not a method but has arguments"
    );
    assert_eq!(
        err("{{ 1 2 }}"),
        "template: :1:3: executing \"\" at <1>: can't give argument to non-function 1"
    );
    assert_eq!(
        err("{{ nil }}"),
        "template: :1:3: executing \"\" at <nil>: nil is not a command"
    );
    assert_eq!(
        err("{{ template \"t\" . }}"),
        "template: :1:3: executing \"\" at <template \"t\" .>: template \"t\" not defined"
    );
    assert_eq!(
        err("{{ range .S }}{{ end }}"),
        "template: :1:9: executing \"\" at <{{range .S}}>: range can't iterate over str"
    );
    assert!(err("{{ $x := 1 }}{{ range 2 }}{{ $y = 2 }}{{ end }}").contains("undefined variable"));
}

#[test]
fn limits_stop_runaway_templates() {
    let d = data();
    // An effectively infinite loop hits the step limit quickly.
    let t0 = std::time::Instant::now();
    let e = run("{{ range 1000000000000 }}x{{ end }}", d.clone()).unwrap_err();
    assert!(e.contains("exceeded the limit of 10000000 steps"), "{e}");
    assert!(t0.elapsed().as_secs() < 30);
    // Output growth is capped.
    let small = Limits {
        max_output: 1000,
        ..Limits::default()
    };
    let e = run_with(
        "{{ range 100 }}{{ range 100 }}xxxxxxxx{{ end }}{{ end }}",
        d.clone(),
        &small,
    )
    .unwrap_err();
    assert!(
        e.contains("template output exceeded the limit of 1000 bytes"),
        "{e}"
    );
    assert_eq!(
        run_with("{{ range 10 }}xxxxxxxxxx{{ end }}", d.clone(), &small)
            .unwrap()
            .len(),
        100
    );
    // Unbounded template recursion is cut off.
    let e = run(
        "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
        d.clone(),
    )
    .unwrap_err();
    assert!(e.contains("exceeded maximum template depth (256)"), "{e}");
    // Step limits are configurable.
    let tiny = Limits {
        max_steps: 50,
        ..Limits::default()
    };
    assert!(run_with("{{ range 100 }}.{{ end }}", d, &tiny)
        .unwrap_err()
        .contains("steps"));
}
