//! 抖音来客 phone ciphertexts without the `Enc.` prefix are decrypted locally (platform-apis.md
//! §2.3): AES-256-CBC, PKCS#7, key = the client secret fitted to 32 bytes, IV = its right half.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;

/// The prefix of ciphertexts only the batch decrypt endpoint can open.
pub const ONLINE_PREFIX: &str = "Enc.";

/// Fits the secret to 32 bytes: pads with `#` or trims, alternating right and left.
pub fn fit_key(secret: &[u8]) -> [u8; 32] {
    let mut key: Vec<u8> = secret.to_vec();
    let mut right = true;
    while key.len() != 32 {
        match (key.len() < 32, right) {
            (true, true) => key.push(b'#'),
            (true, false) => key.insert(0, b'#'),
            (false, true) => {
                key.pop();
            }
            (false, false) => {
                key.remove(0);
            }
        }
        right = !right;
    }
    key.try_into().expect("exactly 32 bytes")
}

/// Decrypts one base64 ciphertext; the error says why without echoing the input.
pub fn decrypt_local(ciphertext: &str, client_secret: &str) -> Result<String, &'static str> {
    let key = fit_key(client_secret.as_bytes());
    let bytes = STANDARD
        .decode(ciphertext.trim())
        .map_err(|_| "ciphertext is not base64")?;
    let plain = Aes256CbcDec::new(&key.into(), key[16..].into())
        .decrypt_padded_vec_mut::<Pkcs7>(&bytes)
        .map_err(|_| "ciphertext does not decrypt with the app secret")?;
    String::from_utf8(plain).map_err(|_| "plaintext is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;

    fn encrypt(plain: &str, secret: &str) -> String {
        let key = fit_key(secret.as_bytes());
        let bytes = Aes256CbcEnc::new(&key.into(), key[16..].into()).encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        STANDARD.encode(bytes)
    }

    #[test]
    fn round_trips_with_a_32_character_secret() {
        let secret = "sim-douyin-secret-0123456789abcd";
        let c = encrypt("13800138000", secret);
        assert_eq!(decrypt_local(&c, secret).unwrap(), "13800138000");
        assert!(decrypt_local(&c, "another-secret-0123456789abcdefg").is_err());
        assert_eq!(decrypt_local("%%%", secret), Err("ciphertext is not base64"));
    }

    #[test]
    fn keys_are_fitted_alternately() {
        let k = fit_key(b"abc");
        assert_eq!(k.iter().filter(|b| **b == b'#').count(), 29);
        assert_eq!(k[14..17], *b"abc");
        let long: Vec<u8> = (0..36u8).map(|i| b'a' + (i % 26)).collect();
        let k = fit_key(&long);
        assert_eq!(k[..], long[2..34]);
    }
}
