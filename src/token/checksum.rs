//! The embedded checksum of prefixed tokens: CRC-32 (IEEE) in base62.
//!
//! This is keel's own offline validator. It is written independently of the reference
//! issuer's code (which the suite is testing), and its vectors come from Python's `zlib.crc32`.

/// The base62 alphabet of the GitHub token format: digits, then upper case, then lower case.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Width of the checksum segment: 62^6 > 2^32, so six digits hold any CRC-32.
pub const CHECKSUM_LEN: usize = 6;

/// Encodes `n` in base62, most significant digit first, left-padded with `0` to `width`.
pub fn base62_padded(mut n: u64, width: usize) -> String {
    let mut digits = Vec::with_capacity(width);
    while n > 0 {
        // The remainder is below 62, so the index is always in range.
        digits.push(BASE62[(n % 62) as usize]);
        n /= 62;
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    digits.into_iter().map(char::from).collect()
}

/// The checksum segment for `body`: CRC-32/IEEE of every byte of `body`, in base62, 6 wide.
pub fn checksum(body: &str) -> String {
    base62_padded(u64::from(crc32fast::hash(body.as_bytes())), CHECKSUM_LEN)
}

/// Whether the last six characters of `token` are the checksum of everything before them.
pub fn verify(token: &str) -> bool {
    if token.len() <= CHECKSUM_LEN || !token.is_ascii() {
        return false;
    }
    let (body, sum) = token.split_at(token.len() - CHECKSUM_LEN);
    checksum(body) == sum
}

/// Every single-character substitution of `token` within the base62 alphabet (and `_` for the
/// prefix separator), and whether the validator caught each one.
///
/// Returns `(tried, missed)` where `missed` lists the first few substitutions that still
/// validated. A CRC-32 detects every burst error of up to 32 bits, so `missed` is empty for any
/// token with a correct checksum; a non-empty list means the validator (or the token) is broken.
pub fn single_substitutions(token: &str) -> (usize, Vec<(usize, char)>) {
    let mut tried = 0;
    let mut missed = Vec::new();
    let bytes = token.as_bytes();
    for i in 0..bytes.len() {
        for &c in BASE62.iter().chain(b"_") {
            if c == bytes[i] {
                continue;
            }
            let mut mutated = bytes.to_vec();
            mutated[i] = c;
            // Substituting one ASCII byte for another keeps the string valid UTF-8.
            let Ok(s) = std::str::from_utf8(&mutated) else {
                continue;
            };
            tried += 1;
            if verify(s) && missed.len() < 5 {
                missed.push((i, char::from(c)));
            }
        }
    }
    (tried, missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from Python: `zlib.crc32(s.encode())`, then base62 with 0-9A-Za-z, padded to 6.
    #[test]
    fn vectors_match_python_zlib() {
        let cases = [
            ("", 0u32, "000000"),
            ("krt_", 0x2a91_e3b7, "0mKj6l"),
            (
                "krt_0123456789abcdefABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
                0x0934_e2ce,
                "0AS6KU",
            ),
            (
                "ghp_R7qMC9cKkFhe5Jrn0yw3TYAsOXVb2D1Lp4Qx",
                0x015b_70f3,
                "01XXUZ",
            ),
            (
                "kak_zzzzzzzzzzzzzzzz00000000000000000000000000000000",
                0x4e03_97c6,
                "1QZppu",
            ),
        ];
        for (input, crc, sum) in cases {
            assert_eq!(crc32fast::hash(input.as_bytes()), crc, "crc of {input:?}");
            assert_eq!(checksum(input), sum, "checksum of {input:?}");
        }
    }

    #[test]
    fn known_tokens_verify() {
        for t in VECTORS {
            assert!(verify(t), "{t} should verify");
        }
    }

    #[test]
    fn every_single_substitution_is_detected() {
        for t in VECTORS {
            let (tried, missed) = single_substitutions(t);
            assert!(
                tried > 60 * t.len() - 1,
                "too few substitutions tried: {tried}"
            );
            assert!(
                missed.is_empty(),
                "{t}: substitutions not detected: {missed:?}"
            );
        }
    }

    #[test]
    fn prefix_swap_breaks_the_checksum_unless_recomputed() {
        let t = VECTORS[0];
        let swapped = format!("xrt_{}", &t[4..]);
        assert!(!verify(&swapped));
        let body = &swapped[..swapped.len() - CHECKSUM_LEN];
        assert!(verify(&format!("{body}{}", checksum(body))));
    }

    #[test]
    fn maximum_crc_fits_six_digits() {
        assert_eq!(base62_padded(u64::from(u32::MAX), 6), "4gfFC3");
    }

    /// Complete tokens whose checksums were computed by Python's zlib (see the test above).
    const VECTORS: &[&str] = &[
        "krt_0123456789abcdefABCDEFGHIJKLMNOPQRSTUVWXYZ0123450AS6KU",
        "ghp_R7qMC9cKkFhe5Jrn0yw3TYAsOXVb2D1Lp4Qx01XXUZ",
        "kak_zzzzzzzzzzzzzzzz000000000000000000000000000000001QZppu",
    ];
}
