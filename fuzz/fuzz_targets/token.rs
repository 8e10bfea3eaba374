//! Access tokens: arbitrary strings, and arbitrary headers and claims that carry a valid
//! signature (so the fuzzer gets past the signature check to the JSON and claim checks).
//! Verification must answer Ok or Err and never panic; nothing but a well-formed EdDSA token
//! from the issuer, in date, may pass.
#![no_main]

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ed25519_dalek::{Signer, SigningKey};
use jiaxin_kit::auth::{KeySource, Verifier};
use libfuzzer_sys::fuzz_target;

const KEY_ID: &str = "k1";

struct OneKey([u8; 32]);

#[async_trait::async_trait]
impl KeySource for OneKey {
    async fn public_keys(&self) -> Result<Vec<(String, [u8; 32])>, String> {
        Ok(vec![(KEY_ID.to_owned(), self.0)])
    }
}

fuzz_target!(|input: (&str, &[u8], &[u8])| {
    let (raw, header, claims) = input;
    let key = SigningKey::from_bytes(&[7; 32]);
    let verifier = Verifier::new(Arc::new(OneKey(key.verifying_key().to_bytes())));
    let now = 1_790_000_000;
    let _ = futures::executor::block_on(verifier.verify_at(raw, now));
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = B64.encode(key.sign(signing_input.as_bytes()).to_bytes());
    if let Ok(accepted) = futures::executor::block_on(verifier.verify_at(&format!("{signing_input}.{signature}"), now))
    {
        // Whatever passed had an EdDSA header naming our key and claims in date.
        let header = String::from_utf8_lossy(header);
        assert!(header.contains("EdDSA") && header.contains(KEY_ID), "accepted header {header}");
        assert!(accepted.exp > now - 120, "accepted an expired token");
    }
});
