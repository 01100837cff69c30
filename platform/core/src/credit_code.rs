//! The unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters from a
//! 31-character set, the last being a check character over the first 17; and the gateway id
//! built from it.

use std::fmt;

/// The code's character set, in value order (no I, O, S, V, Z).
pub const CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// The weights of the first 17 characters (3^i mod 31).
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Why a string is not a valid credit code; each variant says what to correct.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    /// The code does not have 18 characters.
    #[error("a unified social credit code has 18 characters, this one has {found}")]
    Length {
        /// Characters found.
        found: usize,
    },
    /// A character is not in the code's character set.
    #[error(
        "invalid character {character:?} at position {position} (allowed: digits and the letters ABCDEFGHJKLMNPQRTUWXY)"
    )]
    InvalidCharacter {
        /// 1-based position.
        position: usize,
        /// The character found.
        character: char,
    },
    /// The 18th character does not match the first 17.
    #[error("wrong check character: expected {expected}, found {found}")]
    CheckCharacter {
        /// The check character the first 17 characters call for.
        expected: char,
        /// The 18th character as given.
        found: char,
    },
}

/// A verified unified social credit code (upper case, 18 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreditCode(String);

fn value_of(position: usize, c: char) -> Result<u32, CreditCodeError> {
    CHARSET
        .find(c)
        .map(|v| v as u32)
        .ok_or(CreditCodeError::InvalidCharacter {
            position,
            character: c,
        })
}

/// The check character for the first 17 characters of a code (lower case is accepted).
pub fn check_character(first17: &str) -> Result<char, CreditCodeError> {
    let chars: Vec<char> = first17
        .trim()
        .chars()
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if chars.len() != 17 {
        return Err(CreditCodeError::Length {
            found: chars.len() + 1,
        });
    }
    let mut sum = 0;
    for (i, (&c, w)) in chars.iter().zip(WEIGHTS).enumerate() {
        sum += value_of(i + 1, c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Ok(CHARSET.as_bytes()[check as usize] as char)
}

impl CreditCode {
    /// Verifies `code` (surrounding spaces ignored, lower-case letters accepted).
    pub fn parse(code: &str) -> Result<CreditCode, CreditCodeError> {
        let upper: String = code
            .trim()
            .chars()
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let count = upper.chars().count();
        if count != 18 {
            return Err(CreditCodeError::Length { found: count });
        }
        // Report a bad character anywhere (also in 18th place) before the checksum.
        for (i, c) in upper.chars().enumerate() {
            value_of(i + 1, c)?;
        }
        let expected = check_character(&upper[..17])?;
        let found = upper[17..].chars().next().unwrap_or_default();
        if expected != found {
            return Err(CreditCodeError::CheckCharacter { expected, found });
        }
        Ok(CreditCode(upper))
    }

    /// Completes 17 characters with their check character.
    pub fn complete(first17: &str) -> Result<CreditCode, CreditCodeError> {
        let check = check_character(first17)?;
        CreditCode::parse(&format!("{}{check}", first17.trim()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The gateway id for `gateway_name` of enterprise `credit_code`: stable, one topic level
/// (see [`fieldlink_wire::topic::is_valid_gateway_id`]), and starting with the credit code.
/// A name of up to 45 letters, digits, `.`, `_` and `-` that starts with a letter or digit
/// is used as is (`91420100...-line-1`); any other name (Chinese, spaces, long) is
/// replaced by `_` and 12 hex digits of its SHA-256, which no name used as is can equal.
pub fn gateway_id(credit_code: &str, gateway_name: &str) -> String {
    let plain = gateway_name.len() <= 45
        && gateway_name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && gateway_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        format!("{credit_code}-{gateway_name}")
    } else {
        format!(
            "{credit_code}-_{}",
            &crate::secret::sha256_hex(gateway_name)[..12]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_wire::topic::is_valid_gateway_id;

    #[test]
    fn gateway_ids_are_topic_safe_and_stable() {
        let code = "91350100M000100Y43";
        assert_eq!(gateway_id(code, "line-1"), "91350100M000100Y43-line-1");
        let chinese = gateway_id(code, "一号车间");
        assert!(chinese.starts_with("91350100M000100Y43-_"));
        assert_eq!(chinese, gateway_id(code, "一号车间"));
        for name in ["line-1", "一号车间", "a/b+c#", &"x".repeat(64), "_x", "."] {
            assert!(is_valid_gateway_id(&gateway_id(code, name)), "{name}");
        }
        assert_ne!(gateway_id(code, "_x"), gateway_id(code, "x"));
    }

    #[test]
    fn the_standards_example_is_valid() {
        assert!(CreditCode::parse("91350100M000100Y43").is_ok());
        assert_eq!(check_character("91350100M000100Y4"), Ok('3'));
    }

    #[test]
    fn check_value_31_maps_to_zero() {
        // Find a prefix whose weighted sum is divisible by 31 and check it ends in '0'.
        let prefix = (0..10_000u32)
            .map(|n| format!("914201000000{n:05}"))
            .find(|p| {
                let sum: u32 = p
                    .chars()
                    .zip(WEIGHTS)
                    .map(|(c, w)| CHARSET.find(c).unwrap_or(0) as u32 * w)
                    .sum();
                sum.is_multiple_of(31)
            })
            .expect("some prefix sums to a multiple of 31");
        assert_eq!(check_character(&prefix), Ok('0'));
    }
}
