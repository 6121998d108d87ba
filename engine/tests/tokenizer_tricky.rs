//! Tokenizer behaviour on tricky strings, on the real models (llama.cpp semantics).

mod tokenizer_common;

use std::time::Instant;

use ferrite_engine::tokenizer::{StreamDecoder, Tokenizer};
use tokenizer_common::{load, render_piece};

const SMOLLM: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";
const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

const TRICKY: &[&str] = &[
    "",
    " ",
    "  leading and trailing  ",
    "multiple     spaces\tand\ttabs\r\nand\n\n\nnewlines\n",
    "don't can't I'm we're they've he'll she'd IT'S It'S",
    "1234567890 12 123 1234 3.14159 -42 1e10",
    "你好，世界！こんにちは 안녕하세요 Привет мир العربية",
    "emoji 🚀🔥👍🏽 👨‍👩‍👧 flags 🇫🇷",
    "combining é vs e\u{301}, zero\u{200b}width, nbsp\u{a0}here, ideographic\u{3000}space",
    "<|im_start|>user\nhi<|im_end|> <start_of_turn> <bos> <eos>",
    "fn main() { println!(\"{}\", x.map(|y| y * 2)); } // ok",
    "\u{0}\u{1}control\u{7f}",
];

fn pieces(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter().map(|&id| render_piece(t, id)).collect()
}

#[test]
fn tokenizer_roundtrip_all_models() {
    for m in [SMOLLM, GEMMA, QWEN] {
        let t = load(m);
        for s in TRICKY {
            let ids = t.encode(s, false, false);
            assert_eq!(t.decode(&ids), *s, "{m}: {s:?} -> {:?}", pieces(&t, &ids));
            // Streaming gives the same text, whatever the token boundaries.
            let mut d = StreamDecoder::new();
            let mut streamed: String = ids.iter().map(|&id| d.push(&t, id)).collect();
            streamed += &d.finish();
            assert_eq!(streamed, *s, "{m}: streamed {s:?}");
        }
    }
}

#[test]
fn tokenizer_special_tokens_need_parse_special() {
    let q = load(QWEN);
    let (start, end) = (
        q.token_id("<|im_start|>").unwrap(),
        q.token_id("<|im_end|>").unwrap(),
    );
    let text = "<|im_start|>user\nhi<|im_end|>\n";
    let parsed = q.encode(text, true, true);
    assert_eq!(parsed[0], start);
    assert!(parsed.contains(&end));
    assert_eq!(q.decode(&parsed), "user\nhi\n"); // control tokens are not rendered
    let plain = q.encode(text, true, false);
    assert!(!plain.contains(&start) && !plain.contains(&end));
    assert_eq!(pieces(&q, &plain[..4]), ["<", "|", "im", "_start"]);
    assert!(q.is_eog(end));
    // User-defined tokens are split out even from user text (llama.cpp does the same).
    let tool = q.token_id("<tool_call>").unwrap();
    assert!(q.encode("a <tool_call> b", false, false).contains(&tool));

    let g = load(GEMMA);
    let sot = g.token_id("<start_of_turn>").unwrap();
    assert_eq!(g.encode("<start_of_turn>user\n", false, true)[0], sot);
    assert!(!g
        .encode("<start_of_turn>user\n", false, false)
        .contains(&sot));
    assert!(g.is_eog(g.token_id("<end_of_turn>").unwrap()));
    // BOS is added once per encode, not parsed from text unless asked.
    let bos = g.bos().unwrap();
    assert_eq!(g.encode("<bos>x", true, true)[..2], [bos, bos]);
    assert_eq!(
        g.encode("<bos>x", true, false)
            .iter()
            .filter(|&&i| i == bos)
            .count(),
        1
    );
}

#[test]
fn tokenizer_pretokenizer_rules() {
    // qwen2: single digits, case-insensitive contractions, \s+(?!\S) before a word.
    let q = load(QWEN);
    let p = |s: &str| pieces(&q, &q.encode(s, false, false));
    assert_eq!(p("12345"), ["1", "2", "3", "4", "5"]);
    assert_eq!(p("don't"), ["don", "'t"]);
    assert_eq!(p("IT'S"), ["IT", "'S"]);
    assert_eq!(p("a   b"), ["a", "  ", " b"]);
    assert_eq!(p("x\n\n\ny"), ["x", "\n\n\n", "y"]);
    // smollm (starcoder family): digits split first, case-sensitive contractions.
    let s = load(SMOLLM);
    let p = |str: &str| pieces(&s, &s.encode(str, false, false));
    assert_eq!(p("x 2024"), ["x", " ", "2", "0", "2", "4"]);
    assert_eq!(p("IT'S"), ["IT", "'", "S"]);
    // gemma (SPM): spaces are part of the following piece, runs of spaces are tokens.
    let g = load(GEMMA);
    let p = |str: &str| pieces(&g, &g.encode(str, false, false));
    assert_eq!(p("a  b"), ["a", "  ", "b"]);
    assert_eq!(p("hello world"), ["hello", " world"]);
}

#[test]
fn tokenizer_stream_decoder_holds_split_emoji() {
    // SmolLM2 splits 🚀 into three byte-level tokens; nothing is emitted until it completes.
    let t = load(SMOLLM);
    let ids = t.encode(" 🚀", false, false);
    assert_eq!(pieces(&t, &ids), [" \\xf0\\x9f", "\\x9a", "\\x80"]);
    let mut d = StreamDecoder::new();
    assert_eq!(d.push(&t, ids[0]), " ");
    assert_eq!(d.push(&t, ids[1]), "");
    assert_eq!(d.push(&t, ids[2]), "🚀");
    assert_eq!(d.finish(), "");
}

#[test]
fn tokenizer_long_prompt_is_fast() {
    let base = "The quick brown fox jumps over the lazy dog; 12345 don't 你好 🚀\n\tcode(x) ";
    let text: String = (0..120).map(|i| format!("{base}{i} ")).collect();
    let long_word = "a".repeat(4000);
    for m in [SMOLLM, GEMMA, QWEN] {
        let t = load(m);
        t.encode(&text, true, false); // warm the word cache
        let start = Instant::now();
        let ids = t.encode(&text, true, false);
        let warm = start.elapsed();
        let start = Instant::now();
        let ids2 = t.encode(&long_word, false, false);
        let long = start.elapsed();
        assert!(ids.len() > 1500, "{m}: {} tokens", ids.len());
        assert_eq!(t.decode(&ids2), long_word);
        eprintln!(
            "{m}: {} tokens in {warm:?}; 4000-char word in {long:?}",
            ids.len()
        );
        // Generous bounds for unoptimised test builds; release builds are ~10x faster.
        assert!(
            warm.as_millis() < 500 && long.as_millis() < 500,
            "{m}: {warm:?} {long:?}"
        );
    }
}
