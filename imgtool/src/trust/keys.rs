//! Sigstore key files as cosign and skopeo write and read them: a public key is a PEM
//! `PUBLIC KEY` (SPKI); a private key is a PEM `ENCRYPTED SIGSTORE PRIVATE KEY` (or cosign 1's
//! `ENCRYPTED COSIGN PRIVATE KEY`) whose body is JSON: the PKCS#8 DER of the key sealed with
//! NaCl secretbox (XSalsa20-Poly1305) under a key derived from the passphrase with scrypt:
//!
//! ```json
//! {"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"<base64>"},
//!  "cipher":{"name":"nacl/secretbox","nonce":"<base64>"},"ciphertext":"<base64>"}
//! ```
//!
//! Only ECDSA P-256 keys (what `cosign generate-key-pair` and `skopeo generate-sigstore-key`
//! make) are supported. All primitives come from RustCrypto crates.
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The PEM label `generate-sigstore-key` writes (cosign 2 and later, skopeo 1.10 and later).
const PRIVATE_PEM: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label cosign 1 wrote, still read.
const PRIVATE_PEM_COSIGN1: &str = "ENCRYPTED COSIGN PRIVATE KEY";

/// scrypt's cost as go-securesystemslib (and so skopeo) writes it: N = 2^15, r = 8, p = 1.
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
/// The largest N read back: newer cosign writes 2^16; far larger would only let a hostile
/// key file make us spend gigabytes of memory.
const SCRYPT_MAX_LOG_N: u8 = 20;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cipher {
    name: String,
    nonce: String,
}

fn key_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Key {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The 32-byte secretbox key for `passphrase`.
fn derive(
    passphrase: &[u8],
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> std::result::Result<[u8; 32], String> {
    let params =
        scrypt::Params::new(log_n, r, p, 32).map_err(|e| format!("scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(passphrase, salt, &params, &mut key).map_err(|e| format!("scrypt: {e}"))?;
    Ok(key)
}

/// A new P-256 key pair: (the encrypted private key PEM, the public key PEM).
pub fn generate(passphrase: &[u8]) -> Result<(String, String)> {
    let key = SigningKey::random(&mut OsRng);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| Error::Other(format!("encode private key: {e}")))?;
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let box_key =
        derive(passphrase, &salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P).map_err(Error::Other)?;
    let sealed = XSalsa20Poly1305::new((&box_key).into())
        .encrypt((&nonce).into(), der.as_bytes())
        .map_err(|e| Error::Other(format!("seal private key: {e}")))?;
    let body = serde_json::to_vec(&Sealed {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                n: 1 << SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(sealed),
    })
    .map_err(|e| Error::Other(format!("encode private key: {e}")))?;
    let private = pem_encode(PRIVATE_PEM, &body);
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::Other(format!("encode public key: {e}")))?;
    Ok((private, public))
}

/// PEM with 64-column base64 lines, as Go's encoding/pem writes it.
fn pem_encode(label: &str, body: &[u8]) -> String {
    let b64 = B64.encode(body);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The label and decoded body of the first PEM block in `text`.
fn pem_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body_start.find(&end_marker)?;
    let b64: String = body_start[..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(':'))
        .collect();
    Some((label, B64.decode(b64).ok()?))
}

/// Open the encrypted private key at `path` with `passphrase`.
pub fn load_private(path: &Path, passphrase: &[u8]) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(Error::io("read private key", path))?;
    let (label, body) = pem_decode(&text).ok_or_else(|| key_err(path, "no PEM block"))?;
    if label != PRIVATE_PEM && label != PRIVATE_PEM_COSIGN1 {
        return Err(key_err(
            path,
            format!("PEM block is {label:?}, expected {PRIVATE_PEM:?}"),
        ));
    }
    let sealed: Sealed = serde_json::from_slice(&body)
        .map_err(|e| key_err(path, format!("encrypted key JSON: {e}")))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(key_err(
            path,
            format!(
                "unsupported encryption {}/{} (expected scrypt/nacl/secretbox)",
                sealed.kdf.name, sealed.cipher.name
            ),
        ));
    }
    let n = sealed.kdf.params.n;
    if !n.is_power_of_two() || n < 2 || n.trailing_zeros() > u32::from(SCRYPT_MAX_LOG_N) {
        return Err(key_err(path, format!("unsupported scrypt N {n}")));
    }
    let log_n = n.trailing_zeros() as u8;
    let (r, p) = (sealed.kdf.params.r, sealed.kdf.params.p);
    if r == 0 || r > 32 || p == 0 || p > 16 {
        return Err(key_err(path, format!("unsupported scrypt r={r} p={p}")));
    }
    let b64 = |what: &str, s: &str| {
        B64.decode(s)
            .map_err(|e| key_err(path, format!("{what}: bad base64: {e}")))
    };
    let salt = b64("salt", &sealed.kdf.salt)?;
    let nonce = b64("nonce", &sealed.cipher.nonce)?;
    let ciphertext = b64("ciphertext", &sealed.ciphertext)?;
    if nonce.len() != 24 {
        return Err(key_err(path, "nonce is not 24 bytes"));
    }
    let box_key = derive(passphrase, &salt, log_n, r, p).map_err(|e| key_err(path, e))?;
    let der = XSalsa20Poly1305::new((&box_key).into())
        .decrypt(nonce.as_slice().into(), ciphertext.as_slice())
        .map_err(|_| key_err(path, "wrong passphrase (or a corrupted key)"))?;
    SigningKey::from_pkcs8_der(&der)
        .map_err(|e| key_err(path, format!("not an ECDSA P-256 key: {e}")))
}

/// A public key from PEM text; `origin` names where it came from in errors.
pub fn parse_public(pem: &str, origin: &Path) -> Result<VerifyingKey> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        key_err(
            origin,
            format!("not an ECDSA P-256 public key (PEM PUBLIC KEY): {e}"),
        )
    })
}

/// The public key at `path`.
pub fn load_public(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path).map_err(Error::io("read public key", path))?;
    parse_public(&text, path)
}

/// A passphrase file's first line, without its line ending (as skopeo reads
/// `--sign-passphrase-file`).
pub fn read_passphrase_file(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).map_err(Error::io("read passphrase file", path))?;
    let line = data.split(|&b| b == b'\n').next().unwrap_or(&[]);
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_generated_key_opens_with_its_passphrase_and_matches_its_public_half() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = generate(b"secret").unwrap();
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let key = load_private(&write(dir.path(), "k", &private), b"secret").unwrap();
        let public = load_public(&write(dir.path(), "k.pub", &public)).unwrap();
        assert_eq!(key.verifying_key(), &public);
    }

    #[test]
    fn a_wrong_passphrase_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = generate(b"secret").unwrap();
        let p = write(dir.path(), "k", &private);
        let e = load_private(&p, b"other").unwrap_err().to_string();
        assert!(
            e.contains("wrong passphrase") && e.contains(&p.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn a_key_file_that_is_not_an_encrypted_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = generate(b"").unwrap();
        let e = load_private(&write(dir.path(), "k", &public), b"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"PUBLIC KEY\""), "{e}");
        let e = load_private(&write(dir.path(), "k", "junk"), b"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no PEM block"), "{e}");
    }

    #[test]
    fn a_passphrase_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "pw", "pass word\r\nsecond\n");
        assert_eq!(read_passphrase_file(&p).unwrap(), b"pass word");
    }
}
