//! The signature a receiver checks: `X-Argus-Signature: sha256=<hex>`, the HMAC-SHA256 of
//! `<X-Argus-Timestamp>.<body>` under the owner's webhook secret. The timestamp (Unix seconds,
//! fresh on every attempt) inside the signed text lets receivers refuse replays of old
//! notifications; the delivery id (`X-Argus-Delivery`) lets them drop repeats.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a new secret (shown as 64 hex digits after `whsec_`).
const SECRET_BYTES: usize = 32;

/// `sha256=<hex>` over `timestamp.body`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + 2 * digest.len());
    hex.push_str("sha256=");
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// A new secret from the OS's random source.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let mut s = String::from("whsec_");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body_like_any_hmac_sha256() {
        // RFC 4231 test case 2 ("Jefe" / "what do ya want for nothing?"), split at the dot we add.
        let sig = signature("Jefe", 0, b"");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            want,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Any change to the timestamp or the body changes the signature.
        assert_ne!(signature("k", 1, b"{}"), signature("k", 2, b"{}"));
        assert_ne!(signature("k", 1, b"{}"), signature("k", 1, b"{ }"));
        assert_ne!(new_secret(), new_secret());
        assert_eq!(new_secret().len(), 6 + 64);
    }
}
