//! Ollama's render algorithm on representative templates (modelfile.md §4–5): messages
//! mode, legacy Prompt/Response mode with its cut at `.Response`, suffix (FIM) mode,
//! tools and tool calls, think variables, images. Expected outputs are derived by hand
//! from Go `text/template` semantics and Ollama's `Template.Execute`.

use ferrite_server::template::{
    chat_messages, collate, render_chat, render_chat_truncated, render_generate, GenerateInput,
    Message, Template, TemplateError, Think, Tool, ToolArguments, ToolCall, ToolCallFunction,
};

const SYS: &str = "You are a helpful assistant.";
const U1: &str = "Hello, how are you?";
const A1: &str = "I'm doing great. How can I help you today?";
const U2: &str = "I'd like to show off how chat templating works!";

fn msg(role: &str, content: &str) -> Message {
    Message::new(role, content)
}

fn chat4() -> Vec<Message> {
    vec![
        msg("system", SYS),
        msg("user", U1),
        msg("assistant", A1),
        msg("user", U2),
    ]
}

fn parse(src: &str) -> Template {
    Template::parse(src).unwrap_or_else(|e| panic!("{e}"))
}

fn chat(src: &str, msgs: &[Message]) -> String {
    render_chat(&parse(src), msgs, &[], None).unwrap_or_else(|e| panic!("{e}"))
}

const LLAMA3: &str = "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n{{- end }}<|start_header_id|>assistant<|end_header_id|>\n\n";

const CHATML: &str = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";

const GEMMA: &str = r#"{{- $system := "" }}
{{- range .Messages }}
{{- if eq .Role "system" }}
{{- if not $system }}{{ $system = .Content }}{{ else }}{{ $system = printf "%s\n\n%s" $system .Content }}{{ end }}
{{- continue }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{- if $system }}
{{ $system }}
{{- $system = "" }}
{{- end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{- end }}
{{ .Content }}<end_of_turn>
{{ end }}<start_of_turn>model
"#;

const LEGACY: &str = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n";

const CODELLAMA_FIM: &str = "<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>";
const CODESTRAL_FIM: &str = "[SUFFIX]{{ .Suffix }}[PREFIX] {{ .Prompt }}";

#[test]
fn llama3_instruct() {
    assert_eq!(
        chat(LLAMA3, &chat4()),
        format!(
            "<|start_header_id|>system<|end_header_id|>\n\n{SYS}<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\n{U1}<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n{A1}<|eot_id|>\
             <|start_header_id|>user<|end_header_id|>\n\n{U2}<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        )
    );
}

#[test]
fn chatml() {
    assert_eq!(
        chat(CHATML, &chat4()),
        format!(
            "<|im_start|>system\n{SYS}<|im_end|>\n<|im_start|>user\n{U1}<|im_end|>\n\
             <|im_start|>assistant\n{A1}<|im_end|>\n<|im_start|>user\n{U2}<|im_end|>\n\
             <|im_start|>assistant\n"
        )
    );
    // Consecutive messages of one role are merged with a blank line.
    assert_eq!(
        chat(CHATML, &[msg("user", "a"), msg("user", "b")]),
        "<|im_start|>user\na\n\nb<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn gemma_instruct_folds_system_into_the_first_user_turn() {
    let want = format!(
        "<start_of_turn>user\n{SYS}\n{U1}<end_of_turn>\n<start_of_turn>model\n{A1}<end_of_turn>\n\
         <start_of_turn>user\n{U2}<end_of_turn>\n<start_of_turn>model\n"
    );
    assert_eq!(chat(GEMMA, &chat4()), want);
    // Two system messages (not adjacent, so not collated) accumulate via printf.
    let msgs = vec![
        msg("system", "A"),
        msg("user", "u"),
        msg("system", "B"),
        msg("user", "v"),
    ];
    assert_eq!(
        chat(GEMMA, &msgs),
        "<start_of_turn>user\nA\nu<end_of_turn>\n<start_of_turn>user\nB\nv<end_of_turn>\n<start_of_turn>model\n"
    );
    let msgs = vec![
        msg("system", "A"),
        msg("assistant", "x"),
        msg("system", "B"),
        msg("user", "v"),
    ];
    assert_eq!(
        chat(GEMMA, &msgs),
        "<start_of_turn>model\nx<end_of_turn>\n<start_of_turn>user\nA\n\nB\nv<end_of_turn>\n<start_of_turn>model\n"
    );
}

#[test]
fn legacy_prompt_response_turns() {
    let t = parse(LEGACY);
    assert!(!t.uses_messages());
    let turn1 = format!("<|im_start|>system\n{SYS}<|im_end|>\n<|im_start|>user\n{U1}<|im_end|>\n<|im_start|>assistant\n{A1}<|im_end|>\n");
    let open = format!("<|im_start|>user\n{U2}<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(render_chat(&t, &chat4(), &[], None).unwrap(), turn1 + &open);
    // The last message being the assistant's is a prefill: the output ends with it.
    assert_eq!(
        render_chat(&t, &[msg("user", U1), msg("assistant", "I'm")], &[], None).unwrap(),
        format!("<|im_start|>user\n{U1}<|im_end|>\n<|im_start|>assistant\nI'm")
    );
    // A system message after a prompt closes the turn; tool messages are ignored.
    let msgs = vec![
        msg("user", "a"),
        msg("system", "s"),
        msg("tool", "t"),
        msg("user", "b"),
    ];
    assert_eq!(
        render_chat(&t, &msgs, &[], None).unwrap(),
        "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<|im_end|>\n\
         <|im_start|>system\ns<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn templates_without_response_get_one_appended() {
    // Neither .Messages nor .Response: Ollama appends {{ .Response }}.
    let t = parse("{{ .System }}|{{ .Prompt }}|");
    let msgs = vec![
        msg("system", "S"),
        msg("user", "u1"),
        msg("assistant", "a1"),
        msg("user", "u2"),
    ];
    assert_eq!(render_chat(&t, &msgs, &[], None).unwrap(), "S|u1|a1|u2|");
    // The default template.
    let d = Template::default_template();
    assert_eq!(d.source(), "{{ .Prompt }}");
    let g = GenerateInput {
        prompt: "Why is the sky blue?",
        ..GenerateInput::default()
    };
    assert_eq!(render_generate(&d, &g).unwrap(), "Why is the sky blue?");
    // Identifiers are matched case-insensitively.
    assert_eq!(parse("{{ .response }}x").vars(), ["response"]);
}

#[test]
fn cut_at_response_drops_what_follows() {
    // Everything after the first .Response goes, including the rest of its pipeline and
    // a trailing else branch.
    let t =
        parse("{{ if .Prompt }}P:{{ .Prompt }} R:{{ .Response }} after{{ else }}E{{ end }}tail");
    assert_eq!(
        render_chat(&t, &[msg("user", "q")], &[], None).unwrap(),
        "P:q R:"
    );
    let t = parse("{{ .Prompt }}={{ .Response | printf \"%s!\" }}|{{ .Response }}");
    assert_eq!(
        render_chat(
            &t,
            &[msg("user", "q"), msg("assistant", "r"), msg("user", "q2")],
            &[],
            None
        )
        .unwrap(),
        "q=r!|rq2="
    );
    // A .Response in a condition does not cut.
    let t = parse("{{ if .Response }}has{{ end }}[{{ .Prompt }}]{{ .Response }}.");
    assert_eq!(
        render_chat(&t, &[msg("user", "q")], &[], None).unwrap(),
        "[q]"
    );
}

#[test]
fn generate_with_system_suffix_and_raw() {
    let t = parse(LEGACY);
    let g = GenerateInput {
        prompt: "Why?",
        system: "Be brief.",
        model_system: "ignored",
        ..GenerateInput::default()
    };
    assert_eq!(
        render_generate(&t, &g).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n"
    );
    // The model's SYSTEM and MESSAGE history when the request has no system.
    let history = vec![msg("user", "hi"), msg("assistant", "hello")];
    let g = GenerateInput {
        prompt: "Why?",
        model_system: "M",
        history: &history,
        ..GenerateInput::default()
    };
    assert_eq!(
        render_chat(
            &t,
            &[
                msg("system", "M"),
                msg("user", "hi"),
                msg("assistant", "hello"),
                msg("user", "Why?")
            ],
            &[],
            None
        )
        .unwrap(),
        render_generate(&t, &g).unwrap()
    );
    // With `context`, the history is left out.
    let g2 = GenerateInput {
        has_context: true,
        ..g.clone()
    };
    assert_eq!(
        render_generate(&t, &g2).unwrap(),
        "<|im_start|>system\nM<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n"
    );
    // Raw: untouched.
    let raw = GenerateInput {
        prompt: "<s>[INST] x",
        raw: true,
        ..GenerateInput::default()
    };
    assert_eq!(render_generate(&t, &raw).unwrap(), "<s>[INST] x");

    // Suffix (fill-in-the-middle) mode.
    let fim = GenerateInput {
        prompt: "def add(a, b):\n",
        suffix: "\n    return c",
        ..GenerateInput::default()
    };
    let cl = parse(CODELLAMA_FIM);
    assert!(cl.uses_suffix());
    assert_eq!(
        render_generate(&cl, &fim).unwrap(),
        "<PRE> def add(a, b):\n <SUF>\n    return c <MID>"
    );
    assert_eq!(
        render_generate(&parse(CODESTRAL_FIM), &fim).unwrap(),
        "[SUFFIX]\n    return c[PREFIX] def add(a, b):\n"
    );
    // Without a suffix a FIM template runs in legacy mode, where .Suffix is a missing key:
    // Go prints "<no value>" (as Ollama does).
    let no_suffix = GenerateInput {
        prompt: "x",
        ..GenerateInput::default()
    };
    assert_eq!(
        render_generate(&cl, &no_suffix).unwrap(),
        "<PRE> x <SUF><no value> <MID>"
    );
}

fn weather_tool() -> Tool {
    // From text, not json!(): a serde_json::Value would sort the keys.
    serde_json::from_str(
        r#"{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
            "parameters": {"type": "object", "required": ["city"], "properties": {
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "city": {"type": "string", "description": "The city <name>"},
                "when": {"type": ["string", "null"]}}}}}"#,
    )
    .unwrap()
}

fn tool_chat() -> Vec<Message> {
    let mut call = msg("assistant", "");
    let mut args = ToolArguments::default();
    args.insert("unit", "celsius".into());
    args.insert("city", "Tokyo".into());
    call.tool_calls = vec![ToolCall {
        id: "call_1".into(),
        function: ToolCallFunction {
            index: 0,
            name: "get_weather".into(),
            arguments: args,
        },
    }];
    let mut result = msg("tool", "22 degrees");
    result.tool_name = "get_weather".into();
    vec![
        msg("system", SYS),
        msg("user", "Weather in Tokyo?"),
        call,
        result,
    ]
}

const TOOL_JSON: &str = r#"{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","required":["city"],"properties":{"city":{"type":"string","description":"The city \u003cname\u003e"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"when":{"type":["string","null"]}}}}}"#;

const LLAMA31_TOOLS: &str = r#"{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>
{{- if .System }}

{{ .System }}
{{- end }}
{{- if .Tools }}

You have access to the following functions.
{{- range .Tools }}
{{ json . }}
{{- end }}
{{- end }}<|eot_id|>
{{- end }}
{{- range $i, $m := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{- if .ToolCalls }}
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}
{{- else }}

{{ .Content }}
{{- end }}{{ if not $last }}<|eot_id|>{{ end }}
{{- else if eq .Role "tool" }}<|start_header_id|>ipython<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}
{{- end }}"#;

#[test]
fn llama31_style_tools() {
    let t = parse(LLAMA31_TOOLS);
    assert!(t.uses_tools() && t.uses_messages());
    let out = render_chat(&t, &tool_chat(), &[weather_tool()], None).unwrap();
    let want = format!(
        "<|start_header_id|>system<|end_header_id|>\n\n{SYS}\n\nYou have access to the following functions.\n{TOOL_JSON}<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nWeather in Tokyo?<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n{{\"name\": \"get_weather\", \"parameters\": {{\"city\":\"Tokyo\",\"unit\":\"celsius\"}}}}<|eot_id|>\
         <|start_header_id|>ipython<|end_header_id|>\n\n22 degrees<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    assert_eq!(out, want);
    // Without tools the system block has only the system prompt.
    let out = render_chat(&t, &[msg("system", "S"), msg("user", "u")], &[], None).unwrap();
    assert_eq!(
        out,
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nu<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn qwen_style_tools_print_as_json() {
    let src = "{{- range .Tools }}{\"type\": \"function\", \"function\": {{ .Function }}}\n{{ end }}\
               {{- range .Messages }}{{ range .ToolCalls }}<tool_call>{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}</tool_call>{{ end }}{{ end }}";
    let out = render_chat(&parse(src), &tool_chat(), &[weather_tool()], None).unwrap();
    let func = &TOOL_JSON[r#"{"type":"function","function":"#.len()..TOOL_JSON.len() - 1];
    assert_eq!(
        out,
        format!(
            "{{\"type\": \"function\", \"function\": {func}}}\n<tool_call>{{\"name\": \"get_weather\", \"arguments\": {{\"city\":\"Tokyo\",\"unit\":\"celsius\"}}}}</tool_call>"
        )
    );
    // The whole list prints as a JSON array; no tools print as null.
    assert_eq!(
        render_chat(
            &parse("{{ .Tools }}{{ .Messages }}"),
            &[],
            &[weather_tool()],
            None
        )
        .unwrap(),
        format!("[{TOOL_JSON}][]")
    );
    assert_eq!(
        render_chat(&parse("{{ .Tools }}{{ .Messages }}"), &[], &[], None).unwrap(),
        "null[]"
    );
}

#[test]
fn tool_properties_and_typescript_types() {
    let src = "{{- range .Tools }}{{ .Function.Name }}({{ range $k, $v := .Function.Parameters.Properties }}{{ $k }}: {{ toTypeScriptType $v }}, {{ end }}) \
               {{ .Function.Parameters.Required }} {{ .Function.Parameters.Properties.unit.Type }} \
               {{ .Function.Parameters.Properties.when.Type }} {{ .Function.Parameters.Properties.unit.Enum }} \
               {{ .Function.Parameters.Properties.city.Description }}{{ end }}{{ range .Messages }}{{ end }}";
    let out = render_chat(&parse(src), &[msg("user", "x")], &[weather_tool()], None).unwrap();
    assert_eq!(
        out,
        "get_weather(city: string, unit: string, when: string | null, ) [city] string [string null] [celsius fahrenheit] The city <name>"
    );
}

#[test]
fn message_fields_and_think_variables() {
    let src = "{{ if .IsThinkSet }}set:{{ .Think }}/{{ .ThinkLevel }}{{ end }}\
               {{- range .Messages }}|{{ .Role }}:{{ .Content }}{{ if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}\
               {{- if .ToolName }}({{ .ToolName }}){{ end }}{{ len .Images }}{{ end }}";
    let t = parse(src);
    let mut a = msg("assistant", "answer");
    a.thinking = "hmm".into();
    let mut tool = msg("tool", "r");
    tool.tool_name = "f".into();
    let msgs = vec![msg("user", "q"), a, tool];
    assert_eq!(
        render_chat(&t, &msgs, &[], None).unwrap(),
        "|user:q0|assistant:answer<think>hmm</think>0|tool:r(f)0"
    );
    assert_eq!(
        render_chat(&t, &msgs[..1], &[], Some(&Think::Bool(true))).unwrap(),
        "set:true/medium|user:q0"
    );
    assert_eq!(
        render_chat(&t, &msgs[..1], &[], Some(&Think::Bool(false))).unwrap(),
        "set:false/|user:q0"
    );
    assert_eq!(
        render_chat(&t, &msgs[..1], &[], Some(&Think::Level("high".into()))).unwrap(),
        "set:true/high|user:q0"
    );
    // Tool messages are never merged.
    let (system, c) = collate(&[
        msg("tool", "a"),
        msg("tool", "b"),
        msg("system", "s1"),
        msg("system", "s2"),
    ]);
    assert_eq!(
        (system.as_str(), c.len(), c[2].content.as_str()),
        ("s1\n\ns2", 3, "s1\n\ns2")
    );
}

#[test]
fn images_are_tagged() {
    let t = parse(CHATML);
    let mut m1 = msg("user", "look");
    m1.images = vec!["aGk=".into(), "aGk=".into()];
    let mut m2 = msg("user", "and [img] here");
    m2.images = vec!["aGk=".into()];
    let out = render_chat(&t, &[m1, msg("assistant", "ok"), m2], &[], None).unwrap();
    assert_eq!(
        out,
        "<|im_start|>user\n[img-0][img-1]look<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n<|im_start|>user\nand [img-2] here<|im_end|>\n<|im_start|>assistant\n"
    );
    let imgs = vec!["aGk=".to_string()];
    let g = GenerateInput {
        prompt: "what is this?",
        images: &imgs,
        ..GenerateInput::default()
    };
    assert_eq!(
        render_generate(&t, &g).unwrap(),
        "<|im_start|>user\n[img-0]what is this?<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn chat_message_assembly() {
    let history = vec![msg("user", "h")];
    let m = chat_messages("S", &history, &[msg("user", "q")]);
    assert_eq!(
        m.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(),
        ["system", "user", "user"]
    );
    let m = chat_messages("S", &history, &[msg("system", "own"), msg("user", "q")]);
    assert_eq!(m[0].content, "h");
    assert_eq!(m[1].content, "own");
}

#[test]
fn truncation_keeps_system_and_latest() {
    let t = parse(CHATML);
    let msgs = vec![
        msg("system", "S"),
        msg("user", "one two three"),
        msg("assistant", "four five"),
        msg("user", "six"),
    ];
    // Count words as tokens.
    let words = |s: &str| -> Result<usize, ()> { Ok(s.split_whitespace().count()) };
    let full = render_chat_truncated(&t, &msgs, &[], None, 1000, None, words)
        .unwrap()
        .unwrap();
    assert_eq!(full.dropped, 0);
    assert_eq!(full.prompt, render_chat(&t, &msgs, &[], None).unwrap());
    let cut = render_chat_truncated(&t, &msgs, &[], None, 6, None, words)
        .unwrap()
        .unwrap();
    assert_eq!(cut.dropped, 2);
    assert_eq!(
        cut.prompt,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nsix<|im_end|>\n<|im_start|>assistant\n"
    );
    // A tool result is never separated from the call that produced it.
    let tc = tool_chat();
    let mut msgs = tc.clone();
    msgs.insert(1, msg("user", "old old old old old old"));
    let r = render_chat_truncated(&parse(LLAMA31_TOOLS), &msgs, &[], None, 1, None, words)
        .unwrap()
        .unwrap();
    assert_eq!(r.dropped, 2);
    assert!(r.prompt.contains("get_weather") && r.prompt.contains("22 degrees"));
    // The tokenizer's errors come back as such.
    let fail = |_: &str| -> Result<usize, &'static str> { Err("tokenizer down") };
    assert_eq!(
        render_chat_truncated(&t, &msgs, &[], None, 10, None, fail).unwrap_err(),
        "tokenizer down"
    );
}

#[test]
fn api_types_match_the_wire_format() {
    let m: Message = serde_json::from_str(
        r#"{"role":"ASSISTANT","content":null,"tool_calls":[{"function":{"name":"f","arguments":{"b":1,"a":2}}}],"extra":1}"#,
    )
    .unwrap();
    assert_eq!(m.role, "assistant");
    assert_eq!(m.content, "");
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"role":"assistant","content":"","tool_calls":[{"function":{"index":0,"name":"f","arguments":{"b":1,"a":2}}}]}"#
    );
    // Tools serialize in the client's property order, `type` as given (string or list).
    assert_eq!(
        serde_json::to_string(&weather_tool()).unwrap(),
        r#"{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"unit":{"type":"string","enum":["celsius","fahrenheit"]},"city":{"type":"string","description":"The city <name>"},"when":{"type":["string","null"]}},"required":["city"]}}}"#
    );
    let a: ToolArguments = serde_json::from_str(r#"{"z":1,"a":{"y":2,"b":3},"z":4}"#).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r#"{"z":4,"a":{"b":3,"y":2}}"#
    );
    let a: ToolArguments = serde_json::from_str("null").unwrap();
    assert!(a.is_empty());
    assert!(serde_json::from_str::<ToolArguments>("[1]").is_err());
    let think: Option<Think> = serde_json::from_str("\"high\"").unwrap();
    assert_eq!(think, Some(Think::Level("high".into())));
    let e = serde_json::from_str::<Think>("\"extreme\"")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(r#"invalid think value: "extreme" (must be "high", "medium", "low", "max", true, or false)"#), "{e}");
}

#[test]
fn template_errors() {
    match Template::parse("{{ if .Messages }}") {
        Err(TemplateError::Parse { message, line, .. }) => {
            assert_eq!(
                (message.as_str(), line),
                ("template: :1: unexpected EOF", 1)
            );
        }
        other => panic!("{other:?}"),
    }
    // Ollama's identifier walk rejects a template call without a pipeline.
    assert_eq!(
        Template::parse("{{ define \"x\" }}{{ end }}{{ template \"x\" }}")
            .unwrap_err()
            .to_string(),
        "undefined template specified"
    );
    // Execution errors surface with Go's text.
    let t = parse("{{ range .Messages }}{{ .Name }}{{ end }}");
    assert_eq!(
        render_chat(&t, &[msg("user", "x")], &[], None).unwrap_err().to_string(),
        "template: :1:24: executing \"\" at <.Name>: can't evaluate field Name in type *template.templateMessage"
    );
}
