//! Prefixed opaque tokens: `PREFIX` + public id + secret + checksum.
//!
//! The layout is declared by the target (see [`crate::target::PrefixedFormat`]). Parsing is
//! deliberately two-level: [`Anatomy::split`] finds the segments from the token's own structure
//! (prefix up to the first `_`, checksum = the last six characters), so tamperings can be built
//! even from a token that breaks the declared shape; [`Anatomy::conformance`] then says how it
//! deviates from the declaration.

use super::checksum::{self, BASE62, CHECKSUM_LEN};
use crate::target::PrefixedFormat;

/// The segments of a prefixed token, as found in the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anatomy<'a> {
    /// Everything up to and including the first `_` (empty if there is none).
    pub prefix: &'a str,
    /// The public id: the first `public_id_length` characters after the prefix.
    pub public_id: &'a str,
    /// What lies between the public id and the checksum.
    pub secret: &'a str,
    /// The last six characters.
    pub checksum: &'a str,
}

impl<'a> Anatomy<'a> {
    /// Splits `token` by its own structure, guided by the declared public-id length.
    ///
    /// Returns `None` only when the token is too short or not ASCII to have a checksum at all.
    pub fn split(token: &'a str, public_id_length: usize) -> Option<Self> {
        if !token.is_ascii() || token.len() <= CHECKSUM_LEN {
            return None;
        }
        let (body, sum) = token.split_at(token.len() - CHECKSUM_LEN);
        let prefix_len = body.find('_').map_or(0, |i| i + 1);
        let (prefix, rest) = body.split_at(prefix_len);
        let pid_len = public_id_length.min(rest.len());
        let (public_id, secret) = rest.split_at(pid_len);
        Some(Self {
            prefix,
            public_id,
            secret,
            checksum: sum,
        })
    }

    /// The ways this token deviates from `format`; empty when it conforms.
    pub fn conformance(&self, token: &str, format: &PrefixedFormat) -> Vec<String> {
        let mut problems = Vec::new();
        if self.prefix != format.prefix {
            problems.push(format!(
                "prefix is {:?}, declared {:?}",
                self.prefix, format.prefix
            ));
        }
        if self.public_id.len() != format.public_id_length {
            problems.push(format!(
                "public id has {} characters, declared {}",
                self.public_id.len(),
                format.public_id_length
            ));
        }
        if let Some(len) = format.secret_length
            && self.secret.len() != len
        {
            problems.push(format!(
                "secret has {} characters, declared {len}",
                self.secret.len()
            ));
        }
        let body = &token[self.prefix.len()..token.len() - CHECKSUM_LEN];
        if let Some(bad) = body
            .chars()
            .find(|c| !BASE62.contains(&(*c as u8)) || !c.is_ascii())
        {
            problems.push(format!("character {bad:?} is outside the base62 alphabet"));
        }
        if self.secret.is_empty() {
            problems.push("no secret segment".to_owned());
        }
        problems
    }
}

/// `token` with one character of its checksum segment changed (the last one, cycled through
/// the alphabet), so that only the checksum differs from the genuine token.
pub fn alter_checksum(token: &str) -> Option<String> {
    if token.len() <= CHECKSUM_LEN || !token.is_ascii() {
        return None;
    }
    let (head, last) = token.split_at(token.len() - 1);
    let c = last.as_bytes()[0];
    let pos = BASE62.iter().position(|&b| b == c).unwrap_or(0);
    let replacement = char::from(BASE62[(pos + 1) % BASE62.len()]);
    Some(format!("{head}{replacement}"))
}

/// `token` with its prefix replaced by another of the same length and the checksum recomputed,
/// so that the token is well-formed and only the type prefix differs.
pub fn swap_prefix(token: &str, public_id_length: usize) -> Option<String> {
    let a = Anatomy::split(token, public_id_length)?;
    let p = a.prefix.as_bytes();
    let first = *p.first()?;
    // Change the first letter of the prefix: `krt_` becomes `lrt_`; `z` wraps to `a`.
    let swapped_first = match first {
        b'z' => 'a',
        b'Z' => 'A',
        b'9' => '0',
        c => char::from(c + 1),
    };
    let new_prefix = format!("{swapped_first}{}", &a.prefix[1..]);
    let body = format!("{new_prefix}{}{}", a.public_id, a.secret);
    let sum = checksum::checksum(&body);
    Some(format!("{body}{sum}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "krt_0123456789abcdefABCDEFGHIJKLMNOPQRSTUVWXYZ0123450AS6KU";

    fn format() -> PrefixedFormat {
        PrefixedFormat {
            prefix: "krt_".into(),
            public_id_length: 16,
            secret_length: Some(32),
            checksum: crate::target::ChecksumScheme::Crc32Base62,
        }
    }

    #[test]
    fn splits_the_reference_layout() {
        let a = Anatomy::split(T, 16).unwrap();
        assert_eq!(a.prefix, "krt_");
        assert_eq!(a.public_id, "0123456789abcdef");
        assert_eq!(a.secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
        assert_eq!(a.checksum, "0AS6KU");
        assert!(a.conformance(T, &format()).is_empty());
    }

    #[test]
    fn reports_a_wrong_prefix() {
        let t = format!("rt_{}", &T[4..]);
        let a = Anatomy::split(&t, 16).unwrap();
        let problems = a.conformance(&t, &format());
        assert!(problems[0].contains("prefix is \"rt_\""), "{problems:?}");
    }

    #[test]
    fn altered_checksum_differs_only_in_the_checksum() {
        let t = alter_checksum(T).unwrap();
        assert_eq!(t.len(), T.len());
        assert_eq!(&t[..T.len() - 1], &T[..T.len() - 1]);
        assert_ne!(t, T);
        assert!(!checksum::verify(&t));
    }

    #[test]
    fn swapped_prefix_keeps_a_valid_checksum() {
        let t = swap_prefix(T, 16).unwrap();
        assert!(t.starts_with("lrt_"));
        assert_eq!(&t[4..T.len() - 6], &T[4..T.len() - 6]);
        assert!(checksum::verify(&t));
    }
}
