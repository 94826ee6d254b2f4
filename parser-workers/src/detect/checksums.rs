//! Check-digit and issuing rules that turn a digit-shaped candidate into a finding: Luhn and
//! card prefixes, IBAN mod-97 with per-country lengths, US SSN area/group/serial rules.

/// Luhn (mod-10) over ASCII digits; false on anything that is not a digit.
pub fn luhn_valid(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        if !d.is_ascii_digit() {
            return false;
        }
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// A payment card number (digits only): a plausible issuer prefix for its length and a valid
/// Luhn check digit. 12 digits only for Maestro ranges (ISO/IEC 7812 allows 12-19 there);
/// a leading 1 only for 15-digit UATP / JCB 1800 numbers, so 13-digit millisecond timestamps
/// and 17-19 digit snowflake ids starting with 1 are not cards.
pub fn card_valid(digits: &[u8]) -> bool {
    let n = digits.len();
    if !(12..=19).contains(&n) || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let prefix_ok = match digits[0] {
        b'0' => digits.starts_with(b"0604"),
        b'1' => n == 15,
        b'2'..=b'6' => n >= 13 || is_maestro(digits),
        _ => false,
    };
    prefix_ok && (n >= 13 || is_maestro(digits)) && luhn_valid(digits)
}

fn is_maestro(d: &[u8]) -> bool {
    matches!(&d[..2], b"50" | b"56" | b"57" | b"58" | b"63" | b"67") || d.starts_with(b"0604")
}

/// US SSN rules (digits only, 9 of them): area not 000, 666 or 900-999; group not 00;
/// serial not 0000; not one repeated digit; not a number the SSA voided after it was
/// published (078-05-1120 from a wallet insert, 219-09-9999 from an ad, 123-45-6789).
pub fn ssn_valid(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = &d[..3];
    if area == b"000" || area == b"666" || area[0] == b'9' {
        return false;
    }
    if &d[3..5] == b"00" || &d[5..] == b"0000" {
        return false;
    }
    if d.iter().all(|&c| c == d[0]) {
        return false;
    }
    !matches!(d, b"078051120" | b"219099999" | b"123456789")
}

/// The IBAN length of a country (ISO 13616 registry, including the countries added up to
/// 2024), or None when the country has no IBAN. `cc` must be two uppercase ASCII letters.
pub fn iban_length(cc: [u8; 2]) -> Option<usize> {
    let len = match &cc {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FO" | b"GL" | b"NL" | b"SD" | b"FK" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"XK" | b"MN" => 20,
        b"CH" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"CR" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"TL" | b"OM" | b"SO" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN"
        | b"VG" => 24,
        b"LY" | b"PT" | b"ST" => 25,
        b"IS" | b"TR" => 26,
        b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" | b"BI" | b"DJ" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HU" | b"LB" | b"PL" | b"HN"
        | b"NI" | b"SV" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" | b"YE" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        b"RU" => 33,
        _ => return None,
    };
    Some(len)
}

/// ISO 7064 mod-97-10 over an IBAN of uppercase letters and digits (no separators): the
/// country code and check digits moved to the end, letters as 10..35, remainder 1.
pub fn iban_mod97_valid(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_known_cards_and_rejects_one_digit_off() {
        assert!(card_valid(b"4111111111111111"));
        assert!(card_valid(b"378282246310005"));
        assert!(card_valid(b"4012888888881881"));
        assert!(!card_valid(b"4012888888881882"));
        assert!(!card_valid(b"1748503543012"));
        assert!(!card_valid(b"0000000000000000"));
        assert!(!card_valid(b"1700000000000000000"));
    }

    #[test]
    fn ssn_rules() {
        assert!(ssn_valid(b"078051123"));
        for bad in [&b"000121234"[..], b"666121234", b"900121234", b"078001123", b"078050000", b"078051120", b"111111111"] {
            assert!(!ssn_valid(bad), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn iban_mod97() {
        assert!(iban_mod97_valid(b"GB82WEST12345698765432"));
        assert!(!iban_mod97_valid(b"GB82WEST12345698765433"));
        assert_eq!(iban_length(*b"DE"), Some(22));
        assert_eq!(iban_length(*b"US"), None);
    }
}
