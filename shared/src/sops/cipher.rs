//! The `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value: AES-256-GCM under the data key.

use aes_gcm::aead::consts::{U12, U16, U32};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// The 32-byte data key of a SOPS file.
#[derive(Clone)]
pub(crate) struct DataKey(pub(crate) Zeroizing<[u8; 32]>);

impl DataKey {
    pub(crate) fn generate() -> DataKey {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut key[..]);
        DataKey(key)
    }
}

/// A parsed `ENC[…]` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub typ: String,
}

const PREFIX: &str = "ENC[AES256_GCM,data:";

pub(crate) fn looks_encrypted(s: &str) -> bool {
    s.starts_with("ENC[")
}

impl EncValue {
    /// Parse as sops does (`^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`).
    pub(crate) fn parse(s: &str) -> Result<EncValue> {
        let bad = |what: &str| Error::corrupt(format!("encrypted value {what}"));
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("does not match sops' format ENC[AES256_GCM,data:…]"))?;
        let rest = rest
            .strip_suffix(']')
            .ok_or_else(|| bad("is truncated (no closing bracket)"))?;
        let (data, rest) = rest.split_once(",iv:").ok_or_else(|| bad("has no iv"))?;
        let (iv, rest) = rest.split_once(",tag:").ok_or_else(|| bad("has no tag"))?;
        let (tag, typ) = rest
            .split_once(",type:")
            .ok_or_else(|| bad("has no type"))?;
        let decode = |field: &str, v: &str| {
            B64.decode(v)
                .map_err(|_| bad(&format!("has a {field} that is not padded base64")))
        };
        let value = EncValue {
            data: decode("data", data)?,
            iv: decode("iv", iv)?,
            tag: decode("tag", tag)?,
            typ: typ.to_string(),
        };
        if value.data.is_empty() {
            return Err(bad("has empty data"));
        }
        if value.tag.len() != 16 {
            return Err(bad("has a tag that is not 16 bytes"));
        }
        Ok(value)
    }

    pub(crate) fn format(&self) -> String {
        format!(
            "{PREFIX}{},iv:{},tag:{},type:{}]",
            B64.encode(&self.data),
            B64.encode(&self.iv),
            B64.encode(&self.tag),
            self.typ
        )
    }
}

/// Seal `plaintext` (non-empty) with a fresh 32-byte nonce, or `nonce` when re-sealing an
/// unchanged value under the same key (the result is then byte-identical).
pub(crate) fn seal(
    key: &DataKey,
    plaintext: &[u8],
    aad: &[u8],
    typ: &str,
    nonce: Option<&[u8]>,
) -> String {
    let iv: Vec<u8> = match nonce {
        Some(n) => n.to_vec(),
        None => {
            let mut n = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut n);
            n
        }
    };
    let mut buf = plaintext.to_vec();
    let tag = aead_seal(key, &iv, aad, &mut buf);
    let out = EncValue {
        data: std::mem::take(&mut buf),
        iv,
        tag,
        typ: typ.to_string(),
    }
    .format();
    buf.zeroize();
    out
}

fn aead_seal(key: &DataKey, iv: &[u8], aad: &[u8], buf: &mut [u8]) -> Vec<u8> {
    let k = GenericArray::from_slice(&key.0[..]);
    // Nonce lengths other than 12/16/32 are never produced (we only reuse nonces we read and
    // could open, which passed the same length check).
    let tag = match iv.len() {
        12 => AesGcm::<Aes256, U12>::new(k).encrypt_in_place_detached(
            GenericArray::from_slice(iv),
            aad,
            buf,
        ),
        16 => AesGcm::<Aes256, U16>::new(k).encrypt_in_place_detached(
            GenericArray::from_slice(iv),
            aad,
            buf,
        ),
        _ => AesGcm::<Aes256, U32>::new(k).encrypt_in_place_detached(
            GenericArray::from_slice(&iv[..32]),
            aad,
            buf,
        ),
    };
    tag.map(|t| t.to_vec()).unwrap_or_default()
}

/// Open an `ENC[…]` value. The caller checks `typ`.
pub(crate) fn open(key: &DataKey, value: &EncValue, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let k = GenericArray::from_slice(&key.0[..]);
    let mut buf = Zeroizing::new(value.data.clone());
    let tag = Tag::from_slice(&value.tag);
    let ok = match value.iv.len() {
        12 => AesGcm::<Aes256, U12>::new(k).decrypt_in_place_detached(
            GenericArray::from_slice(&value.iv),
            aad,
            &mut buf,
            tag,
        ),
        16 => AesGcm::<Aes256, U16>::new(k).decrypt_in_place_detached(
            GenericArray::from_slice(&value.iv),
            aad,
            &mut buf,
            tag,
        ),
        32 => AesGcm::<Aes256, U32>::new(k).decrypt_in_place_detached(
            GenericArray::from_slice(&value.iv),
            aad,
            &mut buf,
            tag,
        ),
        n => {
            return Err(Error::corrupt(format!(
                "encrypted value has an unsupported {n}-byte nonce"
            )));
        }
    };
    ok.map_err(|_| {
        Error::corrupt("authentication failed: the value was modified, moved to another key path, or the data key is wrong")
    })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_nonce_reuse() {
        let key = DataKey::generate();
        let s = seal(&key, b"hello", b"a:b:", "str", None);
        let v = EncValue::parse(&s).unwrap();
        assert_eq!(v.iv.len(), 32);
        assert_eq!(&open(&key, &v, b"a:b:").unwrap()[..], b"hello");
        assert!(open(&key, &v, b"a:c:").is_err());
        assert_eq!(seal(&key, b"hello", b"a:b:", "str", Some(&v.iv)), s);
    }

    #[test]
    fn malformed_values() {
        for s in [
            "ENC[AES256_GCM,data:,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]",
            "ENC[AES256_GCM,data:AA,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]",
            "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str",
            "ENC[CHACHA,data:AA==]",
        ] {
            assert!(EncValue::parse(s).is_err(), "{s}");
        }
    }
}
