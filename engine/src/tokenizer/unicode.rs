//! Unicode helpers with llama.cpp's semantics (`src/unicode.cpp`): codepoint category flags,
//! its whitespace set, and the GPT-2 byte ↔ unicode mapping.

use super::unicode_data::FLAG_RANGES;

pub(crate) const UNDEFINED: u8 = 0x01;
pub(crate) const NUMBER: u8 = 0x02;
pub(crate) const LETTER: u8 = 0x04;
pub(crate) const MARK: u8 = 0x10;
pub(crate) const PUNCTUATION: u8 = 0x20;
pub(crate) const SYMBOL: u8 = 0x40;

/// Category flags of one codepoint plus llama.cpp's separate whitespace bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// Exactly one category bit for real codepoints; 0 for "out of range" (llama.cpp's
    /// `unicode_cpt_flags{}` returned past the end of a fragment).
    pub category: u8,
    pub whitespace: bool,
}

impl Flags {
    pub fn is_letter(self) -> bool {
        self.category & LETTER != 0
    }
    pub fn is_number(self) -> bool {
        self.category & NUMBER != 0
    }
    /// llama.cpp's `as_uint() != 0`: any bit at all (undefined codepoints count, "none" does not).
    pub fn any(self) -> bool {
        self.category != 0 || self.whitespace
    }
}

/// llama.cpp's `unicode_set_whitespace` (Unicode White_Space).
pub(crate) fn is_whitespace(cpt: u32) -> bool {
    matches!(
        cpt,
        0x09..=0x0D | 0x20 | 0x85 | 0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F
            | 0x205F | 0x3000
    )
}

pub(crate) fn category(cpt: u32) -> u8 {
    if cpt >= 0x110000 {
        return UNDEFINED;
    }
    // Last range starting at or before `cpt`; the table starts at 0 so the index is >= 1.
    let idx = FLAG_RANGES.partition_point(|&(start, _)| start <= cpt);
    FLAG_RANGES[idx - 1].1
}

pub(crate) fn flags(cpt: u32) -> Flags {
    Flags {
        category: category(cpt),
        whitespace: is_whitespace(cpt),
    }
}

/// GPT-2's byte → printable codepoint table (`bytes_to_unicode`).
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut assigned = [false; 256];
    for b in (0x21..=0x7Eu32).chain(0xA1..=0xAC).chain(0xAE..=0xFF) {
        table[b as usize] = char::from_u32(b).expect("latin-1 codepoint");
        assigned[b as usize] = true;
    }
    let mut n = 0u32;
    for b in 0..256usize {
        if !assigned[b] {
            table[b] = char::from_u32(256 + n).expect("codepoint below 512");
            n += 1;
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_match_llama_cpp_table() {
        assert_eq!(category('a' as u32), LETTER);
        assert_eq!(category('7' as u32), NUMBER);
        assert_eq!(category('!' as u32), PUNCTUATION);
        assert_eq!(category('$' as u32), SYMBOL);
        assert_eq!(category(0x0301), MARK);
        assert_eq!(category('你' as u32), LETTER);
        assert_eq!(category(0x1F680), SYMBOL); // rocket
        assert_eq!(category(0x0378), UNDEFINED);
        // Unicode 15.1 additions are present, 16.0 ones are not (llama.cpp's table is 15.1).
        assert_eq!(category(0x2EBF0), LETTER);
        assert_eq!(category(0x1C89), UNDEFINED);
        assert_eq!(category(0x10FFFF), UNDEFINED);
        assert_eq!(category(0x110000), UNDEFINED);
        assert!(is_whitespace(0x3000) && !is_whitespace(0x1C));
    }

    #[test]
    fn byte_table_is_gpt2() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[0xAD], 'Ń');
        let mut seen = std::collections::HashSet::new();
        assert!(t.iter().all(|c| seen.insert(*c)));
    }
}
