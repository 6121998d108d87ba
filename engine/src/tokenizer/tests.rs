//! Unit tests on small hand-made vocabularies.

use super::*;

fn bpe_data(pre: &str) -> TokenizerData {
    // Byte-level symbols (GPT-2 mapping: ' ' → 'Ġ').
    let tokens: Vec<String> = [
        "a",
        "b",
        "c",
        "Ġ",
        "ab",
        "abc",
        "Ġa",
        "<|im_start|>",
        "<tool>",
        "1",
        "2",
        "3",
        "'",
        "s",
        "'s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut types = vec![1; tokens.len()];
    types[7] = 3;
    types[8] = 4;
    TokenizerData {
        model: "gpt2".into(),
        pre: Some(pre.into()),
        tokens,
        token_types: Some(types),
        merges: Some(vec![
            "a b".into(),
            "ab c".into(),
            "Ġ a".into(),
            "' s".into(),
        ]),
        special: SpecialIds {
            eos: Some(7),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn spm_data() -> TokenizerData {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..256 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (t, s) in [
        ("▁", -1.0),
        ("h", -2.0),
        ("i", -2.0),
        ("hi", -0.5),
        ("▁hi", -0.1),
        ("▁▁", -3.0),
    ] {
        tokens.push(t.into());
        types.push(1);
        scores.push(s);
    }
    TokenizerData {
        model: "llama".into(),
        tokens,
        scores: Some(scores),
        token_types: Some(types),
        ..Default::default()
    }
}

fn id(t: &Tokenizer, s: &str) -> u32 {
    t.token_id(s).unwrap()
}

#[test]
fn bpe_merges_by_rank() {
    let t = Tokenizer::new(bpe_data("gpt-2"), TokenizerOptions::default()).unwrap();
    assert_eq!(
        t.encode("abc a's", false, false),
        [id(&t, "abc"), id(&t, "Ġa"), id(&t, "'s")]
    );
    // Unknown characters produce nothing (llama.cpp drops them too).
    assert_eq!(t.encode("ax", false, false), [id(&t, "a")]);
    assert_eq!(t.decode(&t.encode("ab a", false, false)), "ab a");
}

#[test]
fn bpe_special_tokens_only_when_asked() {
    let t = Tokenizer::new(bpe_data("gpt-2"), TokenizerOptions::default()).unwrap();
    let start = id(&t, "<|im_start|>");
    assert!(!t.encode("<|im_start|>a", false, false).contains(&start));
    assert_eq!(t.encode("<|im_start|>a", false, true), [start, id(&t, "a")]);
    // User-defined tokens are always recognised (llama.cpp behaviour).
    assert_eq!(
        t.encode("a<tool>b", false, false),
        [id(&t, "a"), id(&t, "<tool>"), id(&t, "b")]
    );
    // Control tokens render only with `special`.
    assert_eq!(t.token_to_piece(start, false), b"");
    assert_eq!(t.token_to_piece(start, true), b"<|im_start|>");
    assert!(t.is_eog(start) || t.eos() == Some(start));
}

#[test]
fn unknown_pre_is_an_error_unless_allowed() {
    let err = Tokenizer::new(bpe_data("no-such-pre"), TokenizerOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no-such-pre"), "{err}");
    let t = Tokenizer::new(
        bpe_data("no-such-pre"),
        TokenizerOptions {
            allow_unknown_pre: true,
        },
    )
    .unwrap();
    assert_eq!(t.pre_config().unwrap().family, "default");
}

#[test]
fn hostile_metadata_is_rejected() {
    let mut d = bpe_data("gpt-2");
    d.token_types.as_mut().unwrap().pop();
    assert!(Tokenizer::new(d, TokenizerOptions::default()).is_err());

    let mut d = bpe_data("gpt-2");
    d.merges.as_mut().unwrap().push("zz q".into());
    assert!(Tokenizer::new(d, TokenizerOptions::default())
        .unwrap_err()
        .to_string()
        .contains("unknown token"));

    let mut d = bpe_data("gpt-2");
    d.merges.as_mut().unwrap().push("nospace".into());
    assert!(Tokenizer::new(d, TokenizerOptions::default()).is_err());

    let mut d = bpe_data("gpt-2");
    d.merges = None;
    assert!(Tokenizer::new(d, TokenizerOptions::default()).is_err());

    let mut d = bpe_data("gpt-2");
    d.special.bos = Some(1000);
    assert!(Tokenizer::new(d, TokenizerOptions::default())
        .unwrap_err()
        .to_string()
        .contains("bos"));

    let mut d = bpe_data("gpt-2");
    d.add_bos = Some(true); // the BPE default bos id 11 is inside this vocabulary
    d.tokens.truncate(11);
    d.token_types.as_mut().unwrap().truncate(11);
    d.merges = Some(vec!["a b".into()]);
    assert!(Tokenizer::new(d, TokenizerOptions::default())
        .unwrap_err()
        .to_string()
        .contains("bos"));

    let mut d = bpe_data("gpt-2");
    d.tokens[1] = "a".into();
    assert!(Tokenizer::new(d, TokenizerOptions::default())
        .unwrap_err()
        .to_string()
        .contains("duplicate"));

    let mut d = spm_data();
    d.scores.as_mut().unwrap().push(0.0);
    assert!(Tokenizer::new(d, TokenizerOptions::default()).is_err());

    let d = TokenizerData {
        model: "bert".into(),
        tokens: vec!["a".into()],
        ..Default::default()
    };
    assert!(Tokenizer::new(d, TokenizerOptions::default()).is_err());
    let d = TokenizerData {
        model: "llama".into(),
        ..Default::default()
    };
    assert!(Tokenizer::new(d, TokenizerOptions::default()).is_err());
}

#[test]
fn spm_merges_by_score_with_byte_fallback() {
    let t = Tokenizer::new(spm_data(), TokenizerOptions::default()).unwrap();
    assert!(t.add_bos() && t.add_space_prefix());
    let bos = t.bos().unwrap();
    // " hi" (space prefix) → "▁hi"; "é" is unknown → its two UTF-8 bytes.
    let ids = t.encode("hi é", true, false);
    assert_eq!(
        ids,
        [
            bos,
            id(&t, "▁hi"),
            id(&t, "▁"),
            id(&t, "<0xC3>"),
            id(&t, "<0xA9>")
        ]
    );
    assert_eq!(t.decode(&ids), " hi é");
    assert_eq!(t.detokenize(&ids, true, false), " hi é");
    assert_eq!(t.detokenize(&ids[1..], false, false), "hi é");
    assert_eq!(t.encode("", true, false), [bos]);
    assert!(t.encode("", false, false).is_empty());
}

#[test]
fn stream_decoder_holds_partial_characters() {
    let mut d = StreamDecoder::new();
    let bytes = "a🚀é".as_bytes();
    let mut out = String::new();
    for b in bytes {
        out += &d.push_bytes(&[*b]);
        // Never half a character.
        assert!(d.pending().len() < 4);
    }
    assert_eq!(out, "a🚀é");
    assert_eq!(d.push_bytes(&[0xF0, 0x9F]), "");
    // A byte that cannot continue the sequence: the stale prefix becomes U+FFFD.
    assert_eq!(d.push_bytes(b"x"), "\u{FFFD}x");
    assert_eq!(d.push_bytes(&[0xFF]), "\u{FFFD}");
    assert_eq!(d.push_bytes(&[0xE4, 0xBD]), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    assert!(d.pending().is_empty());
}

#[test]
fn clean_spaces_passes() {
    assert_eq!(
        clean_spaces(b"a , b ' c it 's I 'm we 're x 't ."),
        b"a, b'c it's I'm we're x 't."
    );
}

#[test]
fn byte_token_parsing() {
    assert_eq!(byte_of_byte_token("<0x0A>"), 10);
    assert_eq!(byte_of_byte_token("<0xff>"), 255);
    assert_eq!(byte_of_byte_token("<0x"), 0);
    assert_eq!(byte_of_byte_token(""), 0);
}
