//! MarkdownV2 text for `sendMessage`: escaping, the inverse (what the chat shows), the
//! bold-title layout alerts use, and splitting long plain text under the length limit.

/// `sendMessage` accepts 1..=4096 characters of text after entities are parsed.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Characters MarkdownV2 reserves; outside entities each needs a preceding backslash.
pub const RESERVED: [char; 18] =
    ['_', '*', '[', ']', '(', ')', '~', '`', '>', '#', '+', '-', '=', '|', '{', '}', '.', '!'];

pub fn is_reserved(c: char) -> bool {
    RESERVED.contains(&c)
}

/// Plain text as MarkdownV2 that shows exactly that text.
pub fn escape_markdown_v2(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        if c == '\\' || is_reserved(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The text a chat shows for MarkdownV2 `s`: escapes resolved and unescaped `*` dropped
/// as bold markers. Other entities are not interpreted; `render` produces none.
pub fn unescape_markdown_v2(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => out.push(next),
                None => out.push('\\'),
            },
            '*' => {}
            c => out.push(c),
        }
    }
    out
}

/// An alert as MarkdownV2: the title in bold on the first line, the body below.
pub fn render(title: &str, body: &str) -> String {
    format!("*{}*\n{}", escape_markdown_v2(title), escape_markdown_v2(body))
}

/// Splits plain text into pieces of at most `max_chars` characters that concatenate back to
/// `text`. A piece ends after its last newline if it has one, else after its last space, so
/// lines and words stay whole where they can; a separator stays with the earlier piece.
pub fn split(text: &str, max_chars: usize) -> Vec<String> {
    // A zero limit could never make progress; one character per piece is the nearest sense.
    let max_chars = max_chars.max(1);
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some((end, _)) = rest.char_indices().nth(max_chars) else {
            pieces.push(rest.to_string());
            break;
        };
        let window = &rest[..end];
        let cut = window.rfind('\n').or_else(|| window.rfind(' ')).map_or(end, |at| at + 1);
        pieces.push(window[..cut].to_string());
        rest = &rest[cut..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reserved_character_round_trips() {
        for c in RESERVED.into_iter().chain(['\\']) {
            let plain = format!("a{c}b{c}");
            let escaped = escape_markdown_v2(&plain);
            assert_eq!(escaped, format!("a\\{c}b\\{c}"));
            assert_eq!(unescape_markdown_v2(&escaped), plain);
        }
        let all: String = RESERVED.iter().collect::<String>() + "\\ 한글 plain";
        assert_eq!(unescape_markdown_v2(&escape_markdown_v2(&all)), all);
    }

    #[test]
    fn render_shows_title_and_body() {
        let shown = unescape_markdown_v2(&render("BTC *down* 5.1%", "KRW-BTC (upbit) -5.1% [1m]"));
        assert_eq!(shown, "BTC *down* 5.1%\nKRW-BTC (upbit) -5.1% [1m]");
    }

    #[test]
    fn long_mixed_text_splits_under_the_limit_and_concatenates_back() {
        let line = "삼성전자 005930 체결 71,200원 +1.2% volume 1234\n";
        let mut text = String::new();
        while text.chars().count() < 5_000 {
            text.push_str(line);
        }
        let text: String = text.chars().take(5_000).collect();
        let pieces = split(&text, MAX_TEXT_CHARS);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| !p.is_empty() && p.chars().count() <= MAX_TEXT_CHARS));
        assert_eq!(pieces.concat(), text);
        assert!(pieces[0].ends_with('\n'), "breaks after a newline when the piece has one");
    }

    #[test]
    fn prefers_newline_then_space_then_hard_cut() {
        assert_eq!(split("ab cd\nef gh", 8), ["ab cd\n", "ef gh"]);
        assert_eq!(split("ab cd ef gh", 8), ["ab cd ", "ef gh"]);
        assert_eq!(split("가나다라마바사", 3), ["가나다", "라마바", "사"]);
        assert_eq!(split("exact", 5), ["exact"]);
        assert!(split("", 10).is_empty());
    }
}
