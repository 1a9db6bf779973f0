//! Field normalisation: every value is brought to one canonical form before any comparison.
//!
//! Each function is idempotent on its own output: normalising a normalised value changes nothing.
//! Parsers return a typed [`FieldError`] that says what was expected and what was found; the
//! matcher turns those into notes and ignores the field, the CLI reports them as bad input.

use jiff::civil::Date;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Why a field could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A date of birth in no format we know, or not a real date.
    #[error(
        "date of birth {found:?} is not a date: expected DD-MM-YYYY (or YYYY-MM-DD, D/M/YYYY, DD.MM.YYYY, 1 Feb 1990)"
    )]
    Dob {
        /// The rejected input.
        found: String,
    },
    /// A phone number that is not an Australian or international (+ or 00) number.
    #[error(
        "phone number {found:?} is not a phone number: expected an Australian number (04xx xxx xxx, (02) xxxx xxxx, +61 ...) or an international one starting with + or 00"
    )]
    Phone {
        /// The rejected input.
        found: String,
    },
    /// An email address without a single `@` between a local part and a domain.
    #[error("email {found:?} is not an email address: expected local@domain")]
    Email {
        /// The rejected input.
        found: String,
    },
    /// A Medicare number that is not 10 digits with a valid check digit, or an IRN not 1-9.
    #[error("Medicare number {found:?} is invalid: {why}")]
    Medicare {
        /// The rejected input.
        found: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Normalise a personal name: accents stripped, lower case, hyphens as spaces, apostrophes and
/// other punctuation removed, whitespace collapsed, and a leading "Mac" written "Mc" so that
/// MacDonald and McDonald compare equal.
///
/// ```
/// use slotbridge_domain::matching::normalise::normalise_name;
/// assert_eq!(normalise_name("  O'Brien-MacDonald "), "obrien mcdonald");
/// assert_eq!(normalise_name("JOSÉ"), "jose");
/// assert_eq!(normalise_name(&normalise_name("Zoë  Smith")), normalise_name("Zoë  Smith"));
/// ```
pub fn normalise_name(raw: &str) -> String {
    let mut flat = String::with_capacity(raw.len());
    for c in raw.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        for lower in c.to_lowercase() {
            for d in lower.nfkd().filter(|d| !is_combining_mark(*d)) {
                match d {
                    'ß' => flat.push_str("ss"),
                    'æ' => flat.push_str("ae"),
                    'œ' => flat.push_str("oe"),
                    'ø' => flat.push('o'),
                    'đ' | 'ð' => flat.push('d'),
                    'ł' => flat.push('l'),
                    'þ' => flat.push_str("th"),
                    'ı' => flat.push('i'),
                    '-' | '‐' | '‑' | '‒' | '–' | '—' | '_' | '/' | ',' | '.' => {
                        flat.push(' ')
                    }
                    c if c.is_whitespace() => flat.push(' '),
                    c if c.is_alphanumeric() => flat.push(c),
                    _ => {} // apostrophes and other punctuation vanish: O'Brien == OBrien
                }
            }
        }
    }
    flat.split_whitespace()
        .map(|token| match token.strip_prefix("mac") {
            Some(rest) if rest.chars().count() >= 3 => format!("mc{rest}"),
            _ => token.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parse a date of birth written day first (Australian usage) or ISO year first.
///
/// Accepted: `DD-MM-YYYY` (the marketplace's format), `D/M/YYYY`, `DD.MM.YYYY`, `DD MM YYYY`,
/// `YYYY-MM-DD`, `YYYY/MM/DD`, `DDMMYYYY`, `1 Feb 1990`, `1 February 1990`, `Feb 1 1990`, and an
/// ISO timestamp whose date part is `YYYY-MM-DD`. Two-digit years are refused: 01-02-03 could be
/// any century.
///
/// ```
/// use slotbridge_domain::matching::normalise::parse_dob;
/// let d = jiff::civil::date(1990, 2, 23);
/// assert_eq!(parse_dob("23-02-1990"), Ok(d));
/// assert_eq!(parse_dob("1990-02-23"), Ok(d));
/// assert_eq!(parse_dob("23/2/1990"), Ok(d));
/// assert_eq!(parse_dob("23.02.1990"), Ok(d));
/// assert_eq!(parse_dob("23 Feb 1990"), Ok(d));
/// assert!(parse_dob("31-02-1990").is_err());
/// assert!(parse_dob("23-02-90").is_err());
/// ```
pub fn parse_dob(raw: &str) -> Result<Date, FieldError> {
    let err = || FieldError::Dob {
        found: raw.to_string(),
    };
    let trimmed = raw.trim();
    // An ISO timestamp: keep its date part.
    let trimmed = match trimmed.find(['T', 't']) {
        Some(10) => &trimmed[..10],
        _ => trimmed,
    };
    let lower = trimmed.to_lowercase();
    let tokens: Vec<&str> = lower
        .split(['-', '/', '.', ' ', ','])
        .filter(|t| !t.is_empty())
        .collect();
    let num = |t: &str| -> Option<i16> {
        if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            t.parse().ok()
        }
    };
    let month_name = |t: &str| -> Option<i16> {
        let t = t.trim_end_matches('.');
        if t.len() < 3 {
            return None;
        }
        MONTHS
            .iter()
            .position(|m| t.starts_with(m) && full_month_prefix(t))
            .map(|i| i as i16 + 1)
    };
    let (year, month, day) = match tokens.as_slice() {
        [one] if one.len() == 8 && one.bytes().all(|b| b.is_ascii_digit()) => {
            if one.starts_with("19") || one.starts_with("20") {
                // Could be YYYYMMDD or DDMMYYYY; YYYYMMDD only if it is not a valid DDMMYYYY.
                let ddmm = (num(&one[4..]), num(&one[2..4]), num(&one[..2]));
                match ddmm {
                    (Some(y), Some(m), Some(d)) if valid(y, m, d) => (y, m, d),
                    _ => (
                        num(&one[..4]).ok_or_else(err)?,
                        num(&one[4..6]).ok_or_else(err)?,
                        num(&one[6..]).ok_or_else(err)?,
                    ),
                }
            } else {
                (
                    num(&one[4..]).ok_or_else(err)?,
                    num(&one[2..4]).ok_or_else(err)?,
                    num(&one[..2]).ok_or_else(err)?,
                )
            }
        }
        [a, b, c] => {
            if a.len() == 4 && a.bytes().all(|b| b.is_ascii_digit()) {
                // Year first: YYYY-MM-DD.
                (
                    num(a).ok_or_else(err)?,
                    num(b).ok_or_else(err)?,
                    num(c).ok_or_else(err)?,
                )
            } else if c.len() == 4 {
                let year = num(c).ok_or_else(err)?;
                match (num(a), num(b), month_name(a), month_name(b)) {
                    (Some(d), Some(m), _, _) => (year, m, d),
                    (Some(d), None, _, Some(m)) => (year, m, d),
                    (None, Some(d), Some(m), _) => (year, m, d),
                    _ => return Err(err()),
                }
            } else {
                return Err(err());
            }
        }
        _ => return Err(err()),
    };
    if !(1850..=2200).contains(&year) || !valid(year, month, day) {
        return Err(err());
    }
    jiff::civil::Date::new(year, month as i8, day as i8).map_err(|_| err())
}

/// Whether a lower-case word is a month name or its abbreviation ("feb", "febr", "february").
fn full_month_prefix(t: &str) -> bool {
    const FULL: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    FULL.iter().any(|m| m.starts_with(t)) || t == "sept"
}

fn valid(y: i16, m: i16, d: i16) -> bool {
    (1..=12).contains(&m)
        && (1..=31).contains(&d)
        && jiff::civil::Date::new(y, m as i8, d as i8).is_ok()
}

/// Normalise a phone number to E.164 (`+` and digits).
///
/// Australian numbers: `04xx xxx xxx`, `(02) 9xxx xxxx`, `61 4xx ...`, `+61 (0)4xx ...`, a mobile
/// written without its 0 (`4xx xxx xxx`). International numbers are kept when they start with `+`,
/// `00` or the Australian international prefix `0011`. Spaces, dashes, dots and brackets are
/// ignored. An 8-digit landline without its area code cannot be placed and is refused.
///
/// ```
/// use slotbridge_domain::matching::normalise::normalise_phone;
/// assert_eq!(normalise_phone("0412 345 678").unwrap(), "+61412345678");
/// assert_eq!(normalise_phone("(02) 9876-5432").unwrap(), "+61298765432");
/// assert_eq!(normalise_phone("+61 (0)412 345 678").unwrap(), "+61412345678");
/// assert_eq!(normalise_phone("61412345678").unwrap(), "+61412345678");
/// assert_eq!(normalise_phone("0011 44 20 7946 0958").unwrap(), "+442079460958");
/// assert_eq!(normalise_phone("+64 21 123 4567").unwrap(), "+64211234567");
/// assert!(normalise_phone("9876 5432").is_err());
/// ```
pub fn normalise_phone(raw: &str) -> Result<String, FieldError> {
    let err = || FieldError::Phone {
        found: raw.to_string(),
    };
    let trimmed = raw.trim();
    // "+61 (0)4..." : the (0) is the trunk prefix written for domestic callers.
    let without_trunk = trimmed.replace("(0)", "");
    let mut plus = false;
    let mut digits = String::new();
    for (i, c) in without_trunk.chars().enumerate() {
        match c {
            '+' if i == 0 || (digits.is_empty() && !plus) => plus = true,
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            _ => return Err(err()),
        }
    }
    let international = if plus {
        Some(digits.as_str())
    } else {
        digits
            .strip_prefix("0011")
            .or_else(|| digits.strip_prefix("00"))
    };
    let national = match international {
        Some(rest) => match rest.strip_prefix("61") {
            // +61 0412...: a stray trunk zero after the country code.
            Some(au) => au.strip_prefix('0').unwrap_or(au).to_string(),
            None => {
                if (7..=15).contains(&rest.len()) && !rest.starts_with('0') {
                    return Ok(format!("+{rest}"));
                }
                return Err(err());
            }
        },
        None => {
            if digits.len() == 11 && digits.starts_with("61") {
                digits[2..].to_string()
            } else if digits.len() == 10 && digits.starts_with('0') {
                digits[1..].to_string()
            } else if (digits.len() == 9 && digits.starts_with('4'))
                || (digits.len() == 10
                    && (digits.starts_with("1300") || digits.starts_with("1800")))
            {
                digits
            } else {
                return Err(err());
            }
        }
    };
    // An Australian national significant number is 9 digits (2-8 area/mobile prefixes), or a
    // 1300/1800 number of 10 digits.
    let ok = (national.len() == 9 && matches!(national.as_bytes()[0], b'2'..=b'8'))
        || (national.len() == 10 && (national.starts_with("1300") || national.starts_with("1800")));
    if ok {
        Ok(format!("+61{national}"))
    } else {
        Err(err())
    }
}

/// Normalise an email address: surrounding whitespace removed, lower case. An address needs one
/// `@` with text on both sides and a dot in the domain.
///
/// ```
/// use slotbridge_domain::matching::normalise::normalise_email;
/// assert_eq!(normalise_email(" Jane.Doe@Example.COM ").unwrap(), "jane.doe@example.com");
/// assert!(normalise_email("jane.doe").is_err());
/// ```
pub fn normalise_email(raw: &str) -> Result<String, FieldError> {
    let email: String = raw
        .trim()
        .trim_start_matches("mailto:")
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(email)
        }
        _ => Err(FieldError::Email {
            found: raw.to_string(),
        }),
    }
}

/// A verified Medicare card number and, when known, the patient's individual reference number
/// (IRN, the position of the person on the card).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Medicare {
    /// The 10 digits: 8 identifying digits, the check digit, the card issue number.
    pub number: String,
    /// The IRN, 1 to 9, if given.
    pub irn: Option<u8>,
}

impl Medicare {
    /// Parse a Medicare number (spaces and dashes allowed; an 11-digit form carries the IRN as its
    /// last digit) and an optional separate IRN. The first digit must be 2-6 and the check digit
    /// (weights 1,3,7,9,1,3,7,9 on the first 8 digits, sum mod 10) must equal the 9th digit.
    ///
    /// ```
    /// use slotbridge_domain::matching::normalise::Medicare;
    /// let m = Medicare::parse("2123 45670 1", Some("2")).unwrap();
    /// assert_eq!(m.number, "2123456701");
    /// assert_eq!(m.irn, Some(2));
    /// assert_eq!(Medicare::parse("21234567012", None).unwrap().irn, Some(2));
    /// assert!(Medicare::parse("2123456781", None).is_err()); // wrong check digit
    /// ```
    pub fn parse(number: &str, irn: Option<&str>) -> Result<Medicare, FieldError> {
        let bad = |why| FieldError::Medicare {
            found: number.to_string(),
            why,
        };
        let mut digits = String::new();
        for c in number.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '/' | '\u{a0}' => {}
                _ => return Err(bad("expected digits only")),
            }
        }
        let mut irn_digit = None;
        if digits.len() == 11 {
            irn_digit = digits.pop();
        }
        if digits.len() != 10 {
            return Err(bad("expected 10 digits (11 with the IRN)"));
        }
        let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
        if !(2..=6).contains(&d[0]) {
            return Err(bad("the first digit must be 2 to 6"));
        }
        const WEIGHTS: [u32; 8] = [1, 3, 7, 9, 1, 3, 7, 9];
        let sum: u32 = d.iter().zip(WEIGHTS).map(|(x, w)| x * w).sum();
        if sum % 10 != d[8] {
            return Err(bad("the check digit (9th digit) does not match"));
        }
        let irn_text = irn.map(str::trim).filter(|s| !s.is_empty());
        let irn = match (irn_text, irn_digit) {
            (Some(t), _) => match t.parse::<u8>() {
                Ok(n @ 1..=9) => Some(n),
                _ => {
                    return Err(FieldError::Medicare {
                        found: t.to_string(),
                        why: "the IRN must be one digit, 1 to 9",
                    });
                }
            },
            (None, Some(c)) => match c.to_digit(10) {
                Some(n @ 1..=9) => Some(n as u8),
                _ => return Err(bad("the IRN (11th digit) must be 1 to 9")),
            },
            (None, None) => None,
        };
        Ok(Medicare {
            number: digits,
            irn,
        })
    }

    /// The card's identity: its first 9 digits. The 10th, the issue number, changes when a card
    /// is reissued, so it is not compared.
    pub fn card(&self) -> &str {
        &self.number[..9]
    }
}

/// Normalise a street address for comparison: a name-style normalisation, then common street
/// type words abbreviated ("Street" to "st") and "unit"/"apartment" markers dropped, so
/// "Unit 3, 12 Smith Street" and "3/12 Smith St" compare equal.
///
/// ```
/// use slotbridge_domain::matching::normalise::normalise_address;
/// assert_eq!(normalise_address("Unit 3, 12 Smith Street"), normalise_address("3/12 smith st."));
/// ```
pub fn normalise_address(raw: &str) -> String {
    normalise_name(raw)
        .split(' ')
        .filter(|t| !matches!(*t, "unit" | "u" | "apartment" | "apt" | "flat" | "no"))
        .map(|t| match t {
            "street" => "st",
            "road" => "rd",
            "avenue" => "ave",
            "av" => "ave",
            "drive" => "dr",
            "court" => "ct",
            "crescent" => "cres",
            "place" => "pl",
            "parade" => "pde",
            "highway" => "hwy",
            "terrace" => "tce",
            "boulevard" => "blvd",
            "lane" => "ln",
            "close" => "cl",
            "circuit" => "cct",
            "square" => "sq",
            "esplanade" => "esp",
            "north" => "n",
            "south" => "s",
            "east" => "e",
            "west" => "w",
            other => other,
        })
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalise_name("MacKenzie"), "mckenzie");
        assert_eq!(normalise_name("Mack"), "mack");
        assert_eq!(normalise_name("Smith‐Jones"), "smith jones");
        assert_eq!(normalise_name("D’Angelo"), "dangelo");
        assert_eq!(normalise_name("Ærøskøbing"), "aeroskobing");
        assert_eq!(normalise_name("  \t "), "");
    }

    #[test]
    fn dobs() {
        let d = jiff::civil::date(2001, 7, 4);
        for s in [
            "04-07-2001",
            "4-7-2001",
            "04/07/2001",
            "4.7.2001",
            "2001-07-04",
            "2001/07/04",
            "04072001",
            "4 July 2001",
            "4 jul 2001",
            "July 4, 2001",
            "2001-07-04T00:00:00Z",
            " 04 07 2001 ",
        ] {
            assert_eq!(parse_dob(s), Ok(d), "{s}");
        }
        for s in ["", "2001", "04-07-01", "32-01-2001", "29-02-2001", "x-y-z"] {
            assert!(parse_dob(s).is_err(), "{s}");
        }
        assert_eq!(parse_dob("29-02-2000"), Ok(jiff::civil::date(2000, 2, 29)));
    }

    #[test]
    fn phones() {
        for (raw, want) in [
            ("0412345678", "+61412345678"),
            ("0412-345-678", "+61412345678"),
            ("412 345 678", "+61412345678"),
            ("+61412345678", "+61412345678"),
            ("+61 0412 345 678", "+61412345678"),
            ("0061 412 345 678", "+61412345678"),
            ("(03) 9123 4567", "+61391234567"),
            ("08 8123 4567", "+61881234567"),
            ("1300 123 456", "+611300123456"),
            ("+1 (415) 555-2671", "+14155552671"),
            ("0044 7700 900123", "+447700900123"),
        ] {
            assert_eq!(normalise_phone(raw).as_deref(), Ok(want), "{raw}");
        }
        for raw in ["", "12345", "0412 345 67x", "+61 12", "04123456789"] {
            assert!(normalise_phone(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn medicare() {
        assert!(Medicare::parse("7123456701", None).is_err());
        assert!(Medicare::parse("212345670", None).is_err());
        assert!(Medicare::parse("2123456701", Some("0")).is_err());
        let m = Medicare::parse("2123-45670-1", None).unwrap();
        assert_eq!(m.card(), "212345670");
        assert_eq!(m.irn, None);
    }
}
