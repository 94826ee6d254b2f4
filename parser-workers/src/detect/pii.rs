//! PII candidate parsers, each called by the scanner at a trigger byte and validating on the
//! spot: email (at `@`), numeric tokens (at a digit, `+` or `(`: phone, card, SSN, IPv4),
//! IBAN (at its check digits) and IPv6 (at a hex run or `:`). All return byte spans.

use std::net::Ipv6Addr;

use super::checksums::{card_valid, iban_length, iban_mod97_valid, ssn_valid};
use super::scanner::FindingType;
use super::text::{escape_ends_at, is_word, right_boundary};
#[cfg(test)]
use super::text::left_boundary;

/// Longest email local part (RFC 5321).
const EMAIL_LOCAL_MAX: usize = 64;
/// Longest email domain (RFC 1035).
const EMAIL_DOMAIN_MAX: usize = 253;
/// Digit groups looked at in one numeric token; the rest starts a new token.
const MAX_GROUPS: usize = 16;
/// Digits in one group beyond which the run is an opaque number (no PII has more than 19).
const MAX_GROUP_DIGITS: usize = 24;
/// Longest IPv6 text form ("ffff:...:255.255.255.255").
const IPV6_MAX_TEXT: usize = 45;
/// How far before a bare 9-digit number an SSN keyword ("ssn", "social security") is looked for.
const SSN_CONTEXT_BYTES: usize = 48;

/// The email around the `@` at `at`, as (start, end).
pub fn email_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 {
        let c = b[s - 1];
        let local = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
        if !local || escape_ends_at(b, s) {
            break;
        }
        if at - s >= EMAIL_LOCAL_MAX {
            return None;
        }
        s -= 1;
    }
    while s < at && matches!(b[s], b'.' | b'-' | b'+') {
        s += 1;
    }
    if s == at || b[at - 1] == b'.' {
        return None;
    }
    let mut e = at + 1;
    let mut labels = 0;
    let mut last;
    loop {
        let ls = e;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'-') {
            e += 1;
            if e - at > EMAIL_DOMAIN_MAX {
                return None;
            }
        }
        if e == ls || b[ls] == b'-' {
            return None;
        }
        labels += 1;
        last = (ls, e);
        if e + 1 < b.len() && b[e] == b'.' && b[e + 1].is_ascii_alphanumeric() {
            e += 1;
            continue;
        }
        break;
    }
    let tld = &b[last.0..last.1];
    let tld_ok = (tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic))
        || (tld.len() >= 5 && tld[..4].eq_ignore_ascii_case(b"xn--"));
    (labels >= 2 && tld_ok && b[e - 1] != b'-' && right_boundary(b, e)).then_some((s, e))
}

/// An IBAN whose two country letters start at `st` (the check digits follow), as its end.
/// Upper- or lower-case throughout (mixed case is not an IBAN), optional single spaces or
/// dashes after every four characters, exact country length, mod-97.
pub fn iban_at(b: &[u8], st: usize) -> Option<usize> {
    let upper = b[st].is_ascii_uppercase();
    let same_case = |c: u8| if upper { c.is_ascii_uppercase() } else { c.is_ascii_lowercase() };
    if !same_case(b[st]) || !same_case(*b.get(st + 1)?) {
        return None;
    }
    let cc = [b[st].to_ascii_uppercase(), b[st + 1].to_ascii_uppercase()];
    let len = iban_length(cc)?;
    let mut buf = [0u8; 34];
    buf[..2].copy_from_slice(&cc);
    let (mut i, mut count, mut sep) = (st + 2, 2usize, None::<u8>);
    while count < len {
        let c = *b.get(i)?;
        if c.is_ascii_digit() || (count >= 4 && same_case(c)) {
            buf[count] = c.to_ascii_uppercase();
            count += 1;
            i += 1;
        } else if (c == b' ' || c == b'-')
            && count % 4 == 0
            && sep.is_none_or(|s| s == c)
            && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
        {
            sep = Some(c);
            i += 1;
        } else {
            return None;
        }
    }
    (right_boundary(b, i) && iban_mod97_valid(&buf[..len])).then_some(i)
}

/// An IPv6 address (with optional `%zone` and `/prefix`) whose text starts at `st`, as its
/// end. The whole run of hex digits, colons and dots must parse; no shorter prefix is tried.
pub fn ipv6_at(b: &[u8], st: usize) -> Option<usize> {
    let mut e = st;
    while e < b.len() && (b[e].is_ascii_hexdigit() || b[e] == b':' || b[e] == b'.') {
        e += 1;
        if e - st > IPV6_MAX_TEXT {
            return None;
        }
    }
    while e > st && b[e - 1] == b'.' {
        e -= 1;
    }
    let run = &b[st..e];
    if run.iter().filter(|&&c| c == b':').count() < 2 {
        return None;
    }
    std::str::from_utf8(run).ok()?.parse::<Ipv6Addr>().ok()?;
    if b.get(e) == Some(&b'%') {
        let z = e + 1;
        let mut k = z;
        while k < b.len() && b[k].is_ascii_alphanumeric() && k - z < 16 {
            k += 1;
        }
        if k > z {
            e = k;
        }
    }
    if !right_boundary(b, e) {
        return None;
    }
    Some(prefix_len_end(b, e, 128).unwrap_or(e))
}

/// `/n` with n <= max right after `e` (CIDR), as the new end.
fn prefix_len_end(b: &[u8], e: usize, max: u32) -> Option<usize> {
    if b.get(e) != Some(&b'/') {
        return None;
    }
    let ds = e + 1;
    let mut k = ds;
    while k < b.len() && b[k].is_ascii_digit() && k - ds < 4 {
        k += 1;
    }
    if k == ds || k - ds > 3 || !right_boundary(b, k) {
        return None;
    }
    let v: u32 = std::str::from_utf8(&b[ds..k]).ok()?.parse().ok()?;
    (v <= max).then_some(k)
}

/// Where the IPv6 candidate around the `:` at `c` starts, when the scanner has not seen it yet
/// (a run starting with a digit was already tried at that digit).
pub fn ipv6_start_at_colon(b: &[u8], c: usize) -> Option<usize> {
    let mut st = c;
    while st > 0 && c - st < 4 && b[st - 1].is_ascii_hexdigit() {
        st -= 1;
    }
    if st > 0 && b[st - 1].is_ascii_hexdigit() {
        return None;
    }
    if st == c {
        if b.get(c + 1) != Some(&b':') {
            return None;
        }
    } else if b[st].is_ascii_digit() {
        return None;
    }
    let prev_ok = st == 0 || !(is_word(b[st - 1]) || b[st - 1] == b':' || b[st - 1] == b'.');
    (prev_ok || escape_ends_at(b, st)).then_some(st)
}

/// Whether the hex run at `s` (at most four hex digits) is followed by `:` (an IPv6 start).
pub fn hex_run_then_colon(b: &[u8], s: usize) -> bool {
    let mut k = s;
    while k < b.len() && b[k].is_ascii_hexdigit() && k - s < 5 {
        k += 1;
    }
    k - s <= 4 && b.get(k) == Some(&b':')
}

#[derive(Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    paren: bool,
    /// The separator before this group (0 for the first; b')' for "(20)7123").
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Digits, single separators (space, dash, dot) and parenthesised groups from one start.
struct NumericToken {
    plus: bool,
    groups: [Group; MAX_GROUPS],
    n: usize,
    /// End of an extension ("x123", " ext. 45") after the last group.
    ext_end: Option<usize>,
    /// Where scanning resumes.
    resume: usize,
}

/// What a classifier decided for groups starting at k.
enum Verdict {
    /// A finding over groups k..e.
    Found(FindingType, usize),
    /// Groups k..e are something known that is not PII (a date, an invalid SSN).
    Skip(usize),
    None,
}

/// A numeric token starting at `s` (a digit, `+` or `(` at a left boundary): every finding in
/// it is pushed to `emit` as (type, start, end); returns where scanning resumes.
pub fn numeric_at(b: &[u8], s: usize, emit: &mut impl FnMut(FindingType, usize, usize)) -> usize {
    let tok = parse_token(b, s);
    if tok.n == 0 {
        return tok.resume.max(s + 1);
    }
    if tok.n == 1 && !tok.plus && !tok.groups[0].paren && tok.groups[0].len() < 7 {
        return tok.resume;
    }
    let mut k = 0;
    while k < tok.n {
        let v = match ipv4(&tok, b, k) {
            Verdict::None => match date(&tok, b, k) {
                Verdict::None => match card(&tok, b, k) {
                    Verdict::None => match ssn(&tok, b, s, k) {
                        Verdict::None => phone(&tok, b, k),
                        v => v,
                    },
                    v => v,
                },
                v => v,
            },
            v => v,
        };
        match v {
            Verdict::Found(t, e) => {
                let (st, en) = span(&tok, b, k, e, t);
                emit(t, st, en);
                k = e;
            }
            Verdict::Skip(e) => k = e,
            Verdict::None => k += 1,
        }
    }
    tok.resume
}

fn parse_token(b: &[u8], s: usize) -> NumericToken {
    let mut tok = NumericToken { plus: false, groups: [Group::default(); MAX_GROUPS], n: 0, ext_end: None, resume: s + 1 };
    let mut i = s;
    if b[i] == b'+' {
        tok.plus = true;
        i += 1;
    }
    let mut sep = 0u8;
    loop {
        let g = if b.get(i) == Some(&b'(') {
            let ds = i + 1;
            let mut j = ds;
            while j < b.len() && b[j].is_ascii_digit() && j - ds < 5 {
                j += 1;
            }
            if j == ds || b.get(j) != Some(&b')') {
                break;
            }
            i = j + 1;
            Group { start: ds, end: j, paren: true, sep }
        } else if i < b.len() && b[i].is_ascii_digit() {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j - i > MAX_GROUP_DIGITS {
                // An opaque long number: nothing in it, and the token ends before it.
                tok.resume = if tok.n == 0 { skip_word(b, j) } else { i };
                return finish(tok, b);
            }
            let gs = i;
            i = j;
            Group { start: gs, end: j, paren: false, sep }
        } else {
            break;
        };
        tok.groups[tok.n] = g;
        tok.n += 1;
        tok.resume = i;
        if tok.n == MAX_GROUPS {
            break;
        }
        if g.paren && b.get(i).is_some_and(u8::is_ascii_digit) {
            sep = b')';
            continue;
        }
        match b.get(i) {
            Some(&c @ (b' ' | b'-' | b'.')) if b.get(i + 1).is_some_and(|&d| d.is_ascii_digit() || d == b'(') => {
                sep = c;
                i += 1;
            }
            _ => break,
        }
    }
    finish(tok, b)
}

/// The last group must end at a word boundary or be followed by an extension; otherwise it
/// is glued to a word ("15T10" in a timestamp) and dropped.
fn finish(mut tok: NumericToken, b: &[u8]) -> NumericToken {
    if tok.n == 0 {
        return tok;
    }
    let last = tok.groups[tok.n - 1];
    let end = last.end + usize::from(last.paren);
    if !last.paren && !right_boundary(b, end) {
        if let Some(x) = extension_end(b, end) {
            tok.ext_end = Some(x);
            tok.resume = x;
        } else {
            tok.n -= 1;
            tok.resume = skip_word(b, end);
        }
    } else if let Some(x) = extension_end(b, end) {
        tok.ext_end = Some(x);
    }
    tok
}

fn skip_word(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_word(b[i]) {
        i += 1;
    }
    i
}

/// "x123", " x123", "ext123", " ext. 123" right after a phone, as its end.
fn extension_end(b: &[u8], end: usize) -> Option<usize> {
    let starts = |c: Option<&u8>| matches!(c, Some(b'x' | b'e' | b'E'));
    if !(starts(b.get(end)) || (b.get(end) == Some(&b' ') && starts(b.get(end + 1)))) {
        return None;
    }
    let mut i = end;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let rest = b.get(i..)?;
    let skip = if rest.first() == Some(&b'x') {
        1
    } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"ext") {
        if rest.get(3) == Some(&b'.') { if rest.get(4) == Some(&b' ') { 5 } else { 4 } } else { 3 }
    } else {
        return None;
    };
    let ds = i + skip;
    let mut k = ds;
    while k < b.len() && b[k].is_ascii_digit() && k - ds < 7 {
        k += 1;
    }
    (k > ds && k - ds <= 6 && right_boundary(b, k)).then_some(k)
}

fn span(tok: &NumericToken, b: &[u8], k: usize, e: usize, t: FindingType) -> (usize, usize) {
    let first = tok.groups[k];
    let last = tok.groups[e - 1];
    let mut st = first.start - usize::from(first.paren);
    if k == 0 && tok.plus {
        st -= 1;
    }
    let mut en = last.end + usize::from(last.paren);
    if t == FindingType::Phone
        && e == tok.n
        && let Some(x) = tok.ext_end
    {
        en = x;
    }
    if t == FindingType::IpAddress && e == tok.n {
        en = prefix_len_end(b, en, 32).unwrap_or(en);
    }
    (st, en)
}

fn digits_of(tok: &NumericToken, b: &[u8], k: usize, e: usize, out: &mut [u8; 64]) -> usize {
    let mut n = 0;
    for g in &tok.groups[k..e] {
        for &c in &b[g.start..g.end] {
            if n < out.len() {
                out[n] = c;
                n += 1;
            }
        }
    }
    n
}

fn digit_count(tok: &NumericToken, k: usize, e: usize) -> usize {
    tok.groups[k..e].iter().map(Group::len).sum()
}

fn plain(tok: &NumericToken, k: usize, e: usize) -> bool {
    !(k == 0 && tok.plus) && tok.groups[k..e].iter().all(|g| !g.paren)
}

fn same_seps(tok: &NumericToken, k: usize, e: usize, allowed: &[u8]) -> Option<u8> {
    let s = tok.groups.get(k + 1)?.sep;
    (allowed.contains(&s) && tok.groups[k + 1..e].iter().all(|g| g.sep == s)).then_some(s)
}

fn value(b: &[u8], g: &Group) -> u32 {
    b[g.start..g.end].iter().fold(0u32, |v, &c| v.saturating_mul(10).saturating_add(u32::from(c - b'0')))
}

fn ipv4(tok: &NumericToken, b: &[u8], k: usize) -> Verdict {
    if k + 4 > tok.n || !plain(tok, k, k + 4) || same_seps(tok, k, k + 4, b".").is_none() {
        return Verdict::None;
    }
    let ok = tok.groups[k..k + 4].iter().all(|g| {
        let d = &b[g.start..g.end];
        (1..=3).contains(&d.len()) && (d.len() == 1 || d[0] != b'0') && value(b, g) <= 255
    });
    if ok { Verdict::Found(FindingType::IpAddress, k + 4) } else { Verdict::None }
}

/// Dotted quad shape (IPv4-like, valid or not): never a phone.
fn ipv4_shaped(tok: &NumericToken, k: usize, e: usize) -> bool {
    e - k == 4 && tok.groups[k + 1..e].iter().all(|g| g.sep == b'.') && tok.groups[k..e].iter().all(|g| g.len() <= 3)
}

fn date(tok: &NumericToken, b: &[u8], k: usize) -> Verdict {
    if k + 3 > tok.n || !plain(tok, k, k + 3) || same_seps(tok, k, k + 3, b"-.").is_none() {
        return Verdict::None;
    }
    let g = &tok.groups[k..k + 3];
    let lens = [g[0].len(), g[1].len(), g[2].len()];
    let year = |x: &Group| (1900..=2099).contains(&value(b, x));
    let dm = |x: &Group, max| (1..=max).contains(&value(b, x));
    let is_date = match lens {
        [4, 2, 2] => year(&g[0]) && dm(&g[1], 12) && dm(&g[2], 31),
        [2, 2, 4] => year(&g[2]) && dm(&g[0], 31) && dm(&g[1], 31) && (dm(&g[0], 12) || dm(&g[1], 12)),
        _ => false,
    };
    if is_date { Verdict::Skip(k + 3) } else { Verdict::None }
}

fn card(tok: &NumericToken, b: &[u8], k: usize) -> Verdict {
    if (k == 0 && tok.plus) || digit_count(tok, k, tok.n) < 12 {
        return Verdict::None;
    }
    let mut buf = [0u8; 64];
    for e in (k + 1..=tok.n.min(k + 8)).rev() {
        let d = digit_count(tok, k, e);
        if !(12..=19).contains(&d) || !plain(tok, k, e) {
            continue;
        }
        if e - k > 1 && (same_seps(tok, k, e, b" -").is_none() || tok.groups[k..e].iter().any(|g| g.len() < 3)) {
            continue;
        }
        let n = digits_of(tok, b, k, e, &mut buf);
        if card_valid(&buf[..n]) {
            return Verdict::Found(FindingType::CreditCard, e);
        }
    }
    // A number laid out like a card (4-4-4-4, 4-6-5, ...) that fails the checks is a wrong
    // card number, not a phone.
    for e in (k + 3..=tok.n.min(k + 5)).rev() {
        if card_shaped(tok, k, e) {
            return Verdict::Skip(e);
        }
    }
    Verdict::None
}

fn card_shaped(tok: &NumericToken, k: usize, e: usize) -> bool {
    if !plain(tok, k, e) || same_seps(tok, k, e, b" -").is_none() || !(13..=19).contains(&digit_count(tok, k, e)) {
        return false;
    }
    let lens: Vec<usize> = tok.groups[k..e].iter().map(Group::len).collect();
    let fours = lens[..lens.len() - 1].iter().all(|&l| l == 4) && (1..=4).contains(&lens[lens.len() - 1]);
    fours || lens == [4, 6, 5] || lens == [4, 6, 4]
}

fn ssn(tok: &NumericToken, b: &[u8], s: usize, k: usize) -> Verdict {
    if (k == 0 && tok.plus) || !plain(tok, k, (k + 1).min(tok.n)) {
        return Verdict::None;
    }
    let mut buf = [0u8; 64];
    if k + 3 <= tok.n
        && plain(tok, k, k + 3)
        && [tok.groups[k].len(), tok.groups[k + 1].len(), tok.groups[k + 2].len()] == [3, 2, 4]
        && same_seps(tok, k, k + 3, b"- .").is_some()
    {
        let n = digits_of(tok, b, k, k + 3, &mut buf);
        return if ssn_valid(&buf[..n]) { Verdict::Found(FindingType::UsSsn, k + 3) } else { Verdict::Skip(k + 3) };
    }
    // Weak forms (bare 9 digits, 3-6, 5-4) only next to an SSN keyword.
    let weak_end = if tok.groups[k].len() == 9 {
        Some(k + 1)
    } else if k + 2 <= tok.n
        && plain(tok, k, k + 2)
        && tok.groups[k + 1].sep == b'-'
        && matches!([tok.groups[k].len(), tok.groups[k + 1].len()], [3, 6] | [5, 4])
    {
        Some(k + 2)
    } else {
        None
    };
    if let Some(e) = weak_end {
        let n = digits_of(tok, b, k, e, &mut buf);
        if ssn_valid(&buf[..n]) && ssn_context_before(b, s) {
            return Verdict::Found(FindingType::UsSsn, e);
        }
    }
    Verdict::None
}

fn ssn_context_before(b: &[u8], s: usize) -> bool {
    let w = &b[s.saturating_sub(SSN_CONTEXT_BYTES)..s];
    let has = |needle: &[u8]| w.windows(needle.len()).any(|x| x.eq_ignore_ascii_case(needle));
    has(b"ssn") || has(b"social security") || has(b"social_security") || has(b"socialsecurity")
}

fn phone(tok: &NumericToken, b: &[u8], k: usize) -> Verdict {
    for e in (k + 1..=tok.n.min(k + 8)).rev() {
        if phone_valid(tok, b, k, e) {
            return Verdict::Found(FindingType::Phone, e);
        }
    }
    Verdict::None
}

fn phone_valid(tok: &NumericToken, b: &[u8], k: usize, e: usize) -> bool {
    let d = digit_count(tok, k, e);
    let plus = k == 0 && tok.plus;
    let groups = &tok.groups[k..e];
    let first = groups[0];
    if !(7..=15).contains(&d) {
        return false;
    }
    if plus {
        // E.164: country code and subscriber number, any grouping.
        return d >= 8 || e - k > 1;
    }
    if e - k == 1 {
        if first.paren {
            return false;
        }
        let f = b[first.start];
        return (d == 10 && (b'2'..=b'9').contains(&f)) || (d == 11 && (f == b'1' || f == b'0'));
    }
    if groups[1..].iter().any(|g| g.sep == b'.')
        && (e - k < 3 || groups[1..].iter().any(|g| g.sep != b'.') || ipv4_shaped(tok, k, e))
    {
        return false;
    }
    let nanp_one = !first.paren && first.len() == 1 && b[first.start] == b'1' && d == 11;
    let first_ok = if first.paren { (1..=4).contains(&first.len()) } else { (2..=5).contains(&first.len()) || nanp_one };
    if !first_ok || groups[1..].iter().any(|g| g.paren || !(2..=8).contains(&g.len())) {
        return false;
    }
    // "99449 18 McPherson Road": two groups ending in a short one are a house number.
    if e - k == 2 && groups[1].len() < 3 {
        return false;
    }
    // 3-2-4 is the SSN shape: never a phone, valid SSN or not.
    let ssn_shape = e - k == 3 && [groups[0].len(), groups[1].len(), groups[2].len()] == [3, 2, 4] && groups[1].sep == groups[2].sep && !first.paren;
    !ssn_shape
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(s: &str) -> Vec<(FindingType, String)> {
        let b = s.as_bytes();
        let mut out = vec![];
        let mut i = 0;
        while i < b.len() {
            if (b[i].is_ascii_digit() || b[i] == b'+' || b[i] == b'(') && left_boundary(b, i) {
                i = numeric_at(b, i, &mut |t, st, en| out.push((t, s[st..en].to_string())));
            } else {
                i += 1;
            }
        }
        out
    }

    #[test]
    fn emails() {
        let t = b"mail UtaKortig@jourrapide.com, a@xn--d1acufc.xn--p1ai x@y. n@o";
        assert_eq!(email_at(t, 14), Some((5, 29)));
        let at = t.iter().position(|&c| c == b'@').unwrap();
        assert_eq!(at, 14);
        let t2 = br#"{"c":"hi\nJohn.Doe@Example.org\n"}"#;
        let at = t2.iter().position(|&c| c == b'@').unwrap();
        let (s, e) = email_at(t2, at).unwrap();
        assert_eq!(&t2[s..e], b"John.Doe@Example.org");
        assert_eq!(email_at(b"x@y.", 1), None);
        assert_eq!(email_at(b"info@presidio.", 4), None);
    }

    #[test]
    fn numeric_tokens() {
        use FindingType::*;
        let f = |s: &str| numeric(s).into_iter().map(|(t, v)| format!("{t:?}:{v}")).collect::<Vec<_>>().join(" | ");
        assert_eq!(f("4012888888881881 4012-8888-8888-1881 4012 8888 8888 1881"), "CreditCard:4012888888881881 | CreditCard:4012-8888-8888-1881 | CreditCard:4012 8888 8888 1881");
        assert_eq!(f("4012-8888-8888-1882"), "");
        assert_eq!(f("SSN 078-05-1123 and 078-05-0000"), "UsSsn:078-05-1123");
        assert_eq!(f("(415) 555-0132 or +1 415 555 0132"), "Phone:(415) 555-0132 | Phone:+1 415 555 0132");
        assert_eq!(f("+44 (20) 7123 4567"), "Phone:+44 (20) 7123 4567");
        assert_eq!(f("345-899-3560x4587 and 192.168.1.1/24"), "Phone:345-899-3560x4587 | IpAddress:192.168.1.1/24");
        assert_eq!(f("at 2024-01-15 10:30:00 ts 1700000000 v 1.2.3 lat 37.7749295"), "");
        assert_eq!(f("\"ssn\": \"078051121\""), "UsSsn:078051121");
        assert_eq!(f("078051121"), "");
        assert_eq!(numeric("256.1.1.1 10.0.0.0/123").len(), 1);
        let _ = (Email, Iban);
    }

    #[test]
    fn ibans_and_ipv6() {
        let t = b"x VG96 VPVG 0000 0123 4567 8901 X";
        assert_eq!(iban_at(t, 2), Some(31));
        assert_eq!(iban_at(b"LV80 bANK 0000 4351 9500 1", 0), None);
        assert_eq!(iban_at(b"gb82west12345698765432", 0), Some(22));
        assert_eq!(ipv6_at(b"fe80::1%eth0 x", 0), Some(12));
        assert_eq!(ipv6_at(b"2001:db8::/9999", 0), Some(10));
        assert_eq!(ipv6_at(b"::ffff:192.168.1", 0), None);
        assert_eq!(ipv6_at(b"fe80::1text", 0), None);
    }
}
