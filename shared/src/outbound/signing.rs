//! Signatures: ours on webhook deliveries, and the two bot platforms' 加签 recipes
//! (docs/chat-bots.md has their sources).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `X-Leads-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. The time
/// is inside the MAC, so a receiver that refuses old `t` refuses replays.
pub fn webhook_signature(secret: &str, unix: i64, body: &[u8]) -> String {
    let mut message = format!("{unix}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={unix},v1={}", hex(&hmac(secret.as_bytes(), &message)))
}

/// Checks a signature header as a receiver would (the devkit's test receiver uses it).
pub fn verify_webhook(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let expected = webhook_signature(secret, t, body);
    // Constant time, so the comparison leaks nothing of the expected value.
    let given = format!("t={t},v1={v1}");
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// 飞书: `timestamp + "\n" + secret` is the HMAC key, the message is empty; base64.
pub fn feishu_sign(secret: &str, unix: i64) -> String {
    let key = format!("{unix}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac(key.as_bytes(), b""))
}

/// 钉钉: HMAC-SHA256 of `timestamp_ms + "\n" + secret` keyed by the secret; base64 (the caller
/// URL-encodes it into the query).
pub fn dingtalk_sign(secret: &str, unix_ms: i64) -> String {
    let message = format!("{unix_ms}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac(secret.as_bytes(), message.as_bytes()))
}

/// A new signing secret for a webhook subscription.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("OS randomness is available");
    format!("whsec_{}", hex(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_signature_verifies_only_for_its_bytes_and_secret() {
        let body = br#"{"eventId":"ev_1"}"#;
        let header = webhook_signature("whsec_test", 1_764_547_200, body);
        // Computed independently: printf '1764547200.{"eventId":"ev_1"}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            header,
            "t=1764547200,v1=651ee17f5a29487ad08d788c2f2d285668dac688e0ab7f864db8da50727e9c8c"
        );
        assert!(verify_webhook("whsec_test", &header, body));
        assert!(!verify_webhook("whsec_other", &header, body));
        assert!(!verify_webhook("whsec_test", &header, br#"{"eventId":"ev_2"}"#));
        assert!(!verify_webhook("whsec_test", "t=1764547200", body));
    }

    #[test]
    fn bot_signatures_follow_the_platform_recipes() {
        // Recomputed with Python's hmac module from the recipes in docs/chat-bots.md.
        assert_eq!(
            feishu_sign("demo", 1_599_360_473),
            "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
        );
        assert_eq!(
            dingtalk_sign("SECdemo", 1_577_262_236_757),
            "sLRlUUvzoOXn5DR/+o+s6tOqX+bWe3JGaZ7JQ7844l8="
        );
    }
}
