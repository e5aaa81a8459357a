//! `signedBy` with `keyType: GPGKeys`: containers' "simple signing" signatures, checked with
//! the system's `gpg` (GnuPG), never with OpenPGP code of our own. A signature is an OpenPGP
//! signed message whose literal data is the payload
//! `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
//! "type":"atomic container signature"},"optional":{…}}`.
//!
//! Each check writes the policy's keys (armored ones through `gpg --dearmor`) to a keyring
//! file in a fresh temporary directory and runs `gpgv` on the signature: gpgv trusts exactly
//! that keyring (neither the user's keys nor trust settings take part) and starts no agent.
//! A signature is accepted only when gpgv exits 0 and reports `VALIDSIG`.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::sigstore::Claim;

const SIGNATURE_TYPE: &str = "atomic container signature";

/// A temporary keyring holding only the trusted keys.
pub struct Keyring {
    dir: tempfile::TempDir,
    file: PathBuf,
}

/// Run `cmd` with `input` on stdin; (exit ok, stdout, stderr).
fn run(mut cmd: Command, input: &[u8]) -> Result<(bool, Vec<u8>, String), String> {
    let name = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {name} (is GnuPG installed?): {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        // A child that stops reading early reports why on stderr.
        let _ = i.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("run {name}: {e}"))?;
    Ok((
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

impl Keyring {
    /// A keyring of `keys` (each an armored or binary public key block).
    pub fn new(keys: &[Vec<u8>]) -> Result<Keyring, String> {
        let dir = tempfile::Builder::new()
            .prefix(".imgtool-gpg-")
            .tempdir()
            .map_err(|e| format!("create a temporary keyring: {e}"))?;
        let mut ring = vec![];
        for k in keys {
            if k.starts_with(b"-----BEGIN PGP") {
                let mut c = Command::new("gpg");
                c.arg("--homedir")
                    .arg(dir.path())
                    .args(["--batch", "--no-tty", "--dearmor"]);
                let (ok, out, err) = run(c, k)?;
                if !ok || out.is_empty() {
                    return Err(format!(
                        "a policy key is not an OpenPGP key: {}",
                        err.lines().last().unwrap_or("")
                    ));
                }
                ring.extend(out);
            } else {
                ring.extend_from_slice(k);
            }
        }
        let file = dir.path().join("trusted.gpg");
        std::fs::write(&file, ring).map_err(|e| format!("write temporary keyring: {e}"))?;
        Ok(Keyring { dir, file })
    }

    /// Check one signature; what it claims when gpgv accepts it.
    pub fn verify(&self, signature: &[u8]) -> Result<Claim, String> {
        let sig = self.dir.path().join("signature");
        std::fs::write(&sig, signature).map_err(|e| format!("write signature: {e}"))?;
        let mut c = Command::new("gpgv");
        c.arg("--keyring")
            .arg(&self.file)
            .args(["--status-fd", "2", "--logger-fd", "2", "--output", "-"])
            .arg(&sig);
        let (ok, payload, status) = run(c, &[])?;
        let valid = status.lines().any(|l| l.starts_with("[GNUPG:] VALIDSIG "));
        if !ok || !valid {
            let why = if status.contains("NO_PUBKEY") {
                "signed by a key the policy does not trust"
            } else if status.contains("BADSIG") {
                "cryptographic signature verification failed"
            } else {
                "not a valid OpenPGP signature"
            };
            return Err(why.to_string());
        }
        parse_payload(&payload)
    }
}

/// The simple-signing payload for the manifest `digest` signed as `reference`.
pub fn payload(digest: &str, reference: &str) -> Vec<u8> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": {
            "creator": concat!("imgtool ", env!("CARGO_PKG_VERSION")),
            "timestamp": timestamp,
        },
    })
    .to_string()
    .into_bytes()
}

/// Sign `payload` with the user's GPG key `fingerprint` (their own GnuPG home and agent, as
/// skopeo signs); `passphrase_file` is handed to gpg for a protected key.
pub fn sign(
    fingerprint: &str,
    payload: &[u8],
    passphrase_file: Option<&std::path::Path>,
) -> Result<Vec<u8>, String> {
    let mut c = Command::new("gpg");
    c.args(["--batch", "--no-tty", "--sign", "--local-user", fingerprint]);
    if let Some(f) = passphrase_file {
        c.args(["--pinentry-mode", "loopback", "--passphrase-file"])
            .arg(f);
    }
    let (ok, out, err) = run(c, payload)?;
    if !ok || out.is_empty() {
        return Err(format!(
            "gpg could not sign with {fingerprint}: {}",
            err.lines().last().unwrap_or("")
        ));
    }
    Ok(out)
}

fn parse_payload(payload: &[u8]) -> Result<Claim, String> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| format!("signed payload is not JSON: {e}"))?;
    let critical = v["critical"]
        .as_object()
        .ok_or("signed payload has no critical object")?;
    if critical.len() != 3 || critical.get("type").and_then(Value::as_str) != Some(SIGNATURE_TYPE) {
        return Err(format!(
            "signed payload is not an {SIGNATURE_TYPE:?} (critical must have exactly type, image, identity)"
        ));
    }
    let digest = critical["image"]["docker-manifest-digest"]
        .as_str()
        .ok_or("signed payload has no docker-manifest-digest")?;
    let reference = critical["identity"]["docker-reference"]
        .as_str()
        .ok_or("signed payload has no docker-reference")?;
    if critical["image"].as_object().map(|o| o.len()) != Some(1)
        || critical["identity"].as_object().map(|o| o.len()) != Some(1)
    {
        return Err("signed payload has unexpected fields".into());
    }
    Ok(Claim {
        digest: digest.to_string(),
        reference: reference.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_of_another_type_is_refused() {
        let p = br#"{"critical":{"identity":{"docker-reference":"a/b:1"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":{}}"#;
        assert!(parse_payload(p)
            .unwrap_err()
            .contains("atomic container signature"));
        let ok = br#"{"critical":{"identity":{"docker-reference":"a/b:1"},"image":{"docker-manifest-digest":"sha256:00"},"type":"atomic container signature"},"optional":{}}"#;
        assert_eq!(parse_payload(ok).unwrap().reference, "a/b:1");
    }
}
