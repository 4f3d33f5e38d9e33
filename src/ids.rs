//! Ids and keys: random, URL-safe, and never starting with `-` or `_`, so a command line never
//! reads one as a flag.

use base64::Engine as _;

use crate::clock::Millis;

/// Crockford's base32 in lower case: digits and letters only, in byte order, so text sorts as
/// the numbers it encodes.
const TIME_DIGITS: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A new choice's id (26 characters): its creation time in milliseconds as 10 base32 digits
/// (50 bits, so the first is a digit for the next eight thousand years), then 96 random bits
/// in URL-safe base64 (the capability; API.md promises at least 96). Ids made close together
/// sort close together, so the store's indexes on them take a batch of new choices on their
/// last page or two; random ids put each one on a page of its own.
///
/// Ids made before this form (24 characters from a byte-ordered base64, starting with `-`)
/// stay what they are: an id is opaque, looked up as given.
pub fn new_choice_id(now: Millis) -> anyhow::Result<String> {
    let millis = u64::try_from(now).unwrap_or(0);
    let mut id = String::with_capacity(26);
    for digit in (0..10).rev() {
        id.push(TIME_DIGITS[((millis >> (5 * digit)) & 31) as usize] as char);
    }
    let mut random = [0u8; 12];
    getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness for an id: {e}"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(random, &mut id);
    Ok(id)
}

/// A new random key (approvers' links, viewer cookies): 128 random bits, URL-safe base64 (22
/// characters), led by a letter or digit.
pub fn new_key() -> anyhow::Result<String> {
    loop {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        // One in 32 draws starts with `-` or `_`; draw again rather than shift the bits.
        if !key.starts_with(['-', '_']) {
            return Ok(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_ids_start_with_a_digit_and_sort_by_creation_time() {
        let start: Millis = 1_796_400_000_000;
        let ids: Vec<String> = (0..10_000)
            .map(|n| new_choice_id(start + n * 997).expect("an id"))
            .collect();
        for id in &ids {
            assert_eq!(id.len(), 26, "{id}");
            assert!(id.starts_with(|c: char| c.is_ascii_digit()), "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{id}"
            );
        }
        assert!(ids.windows(2).all(|w| w[0][..10] <= w[1][..10]));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn the_time_digits_are_the_milliseconds_in_base32() {
        let id = new_choice_id(33).expect("an id");
        assert_eq!(&id[..10], "0000000011");
    }

    #[test]
    fn ten_thousand_keys_never_start_with_a_dash_or_an_underscore() {
        for _ in 0..10_000 {
            let key = new_key().expect("a key");
            assert_eq!(key.len(), 22);
            assert!(!key.starts_with(['-', '_']), "{key}");
        }
    }
}
