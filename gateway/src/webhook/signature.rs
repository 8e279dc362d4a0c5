//! `X-Hub-Signature-256`: HMAC-SHA256 of the **raw** request bytes keyed with
//! the Meta app secret, sent as `sha256=<lowercase hex>`.
//!
//! The MAC is always computed over the bytes exactly as received: Meta escapes
//! non-ASCII characters (`\u00e9`), `/` (`\/`) and `@` (`\u0040`), and any
//! decode/re-encode round trip changes the bytes and breaks the signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Name of the signature header Meta sends.
pub const HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";

/// Why a present signature header was refused. The caller answers 403 for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("signature header is not `sha256=<64 hex digits>`")]
    Malformed,
    /// No configured app secret produces this signature for these bytes.
    #[error("signature does not match the body for any configured app secret")]
    Mismatch,
}

/// Signs `body` with `secret` the way Meta does: `"sha256=<lowercase hex>"`.
/// Used by tests and tools to produce valid requests.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "{PREFIX}{}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

/// Checks an `X-Hub-Signature-256` header value against `body`, trying every
/// configured secret (several Meta apps, or a secret rotation). Each comparison
/// is constant time (`Mac::verify_slice`).
pub fn verify<S: AsRef<[u8]>>(
    secrets: &[S],
    header: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let expected = decode_header(header)?;
    let matched = secrets
        .iter()
        .any(|secret| mac(secret.as_ref(), body).verify_slice(&expected).is_ok());
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn decode_header(header: &str) -> Result<Vec<u8>, SignatureError> {
    let header = header.trim();
    let hex_part = header
        .get(..PREFIX.len())
        .filter(|p| p.eq_ignore_ascii_case(PREFIX))
        .and_then(|_| header.get(PREFIX.len()..))
        .ok_or(SignatureError::Malformed)?;
    match hex::decode(hex_part) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        _ => Err(SignatureError::Malformed),
    }
}

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the
    // fallback only exists to avoid an unwrap.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"app-secret";

    #[test]
    fn sign_then_verify_round_trips() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(SECRET, body);
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), 7 + 64);
        assert_eq!(verify(&[SECRET], &header, body), Ok(()));
    }

    #[test]
    fn known_vector_matches_hmac_sha256() {
        // RFC 4231 test case 2.
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn escaped_unicode_bodies_verify_on_their_raw_bytes() {
        for body in [
            br#"{"text":{"body":"caf\u00e9"}}"#.as_slice(),
            br#"{"url":"https:\/\/example.com\/a"}"#.as_slice(),
            br#"{"text":{"body":"me\u0040example.com"}}"#.as_slice(),
            br#"{"e":"\ud83d\ude00"}"#.as_slice(),
        ] {
            let header = sign(SECRET, body);
            assert_eq!(verify(&[SECRET], &header, body), Ok(()));
            // The decoded form is different bytes and must not verify.
            let decoded: serde_json::Value = serde_json::from_slice(body).unwrap();
            let reencoded = serde_json::to_vec(&decoded).unwrap();
            assert_ne!(reencoded, body);
            assert_eq!(
                verify(&[SECRET], &header, &reencoded),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn wrong_secret_fails() {
        let header = sign(b"other", b"{}");
        assert_eq!(
            verify(&[SECRET], &header, b"{}"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn second_configured_secret_is_accepted() {
        let header = sign(b"new-secret", b"{}");
        assert_eq!(verify(&[SECRET, b"new-secret"], &header, b"{}"), Ok(()));
    }

    #[test]
    fn no_secret_never_matches() {
        let header = sign(SECRET, b"{}");
        assert_eq!(
            verify::<&[u8]>(&[], &header, b"{}"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let header = sign(SECRET, b"{}").to_uppercase();
        assert_eq!(verify(&[SECRET], &header, b"{}"), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let good = sign(SECRET, b"{}");
        let hex_only = good.trim_start_matches("sha256=").to_owned();
        for header in [
            "".to_owned(),
            "sha256=".to_owned(),
            "sha1=abcdef".to_owned(),
            hex_only,
            "sha256=zz".to_owned(),
            format!("{good}00"),
            good[..good.len() - 2].to_owned(),
            "sha256=é".to_owned(),
        ] {
            assert_eq!(
                verify(&[SECRET], &header, b"{}"),
                Err(SignatureError::Malformed),
                "{header:?}"
            );
        }
    }
}
