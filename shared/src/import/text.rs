//! A CSV export's bytes as text: UTF-8 with or without a BOM, or GB18030 (what Chinese Excel
//! writes by default). Valid UTF-8 is taken as UTF-8; anything else is decoded as GB18030, which
//! covers GBK and GB2312.

use encoding_rs::GB18030;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Gb18030,
}

/// The text and the encoding it was read in.
pub fn decode(bytes: &[u8]) -> (String, Encoding) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => (text.to_owned(), Encoding::Utf8),
        Err(_) => {
            let (text, _, _) = GB18030.decode(bytes);
            (text.into_owned(), Encoding::Gb18030)
        }
    }
}

/// Full-width ASCII (`０-９`, `Ａ-Ｚ`, `：`, the ideographic space) as its half-width form, so
/// `手机号 ` and `手机号` and `１３８…` read the same.
pub fn half_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_or_without_a_bom_and_gb18030_read_the_same() {
        let text = "线索ID,客户姓名\n1,王先生\n";
        let (plain, e1) = decode(text.as_bytes());
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(text.as_bytes());
        let (with_bom, e2) = decode(&bom);
        let (gb, _, _) = GB18030.encode(text);
        let (from_gb, e3) = decode(&gb);
        assert_eq!((plain.as_str(), e1), (text, Encoding::Utf8));
        assert_eq!((with_bom.as_str(), e2), (text, Encoding::Utf8));
        assert_eq!((from_gb.as_str(), e3), (text, Encoding::Gb18030));
    }

    #[test]
    fn full_width_forms_become_half_width() {
        assert_eq!(half_width("１３８ ００１３ ８０００"), "138 0013 8000");
        assert_eq!(half_width("手机号\u{3000}"), "手机号 ");
        assert_eq!(half_width("ＩＤ：７"), "ID:7");
    }
}
