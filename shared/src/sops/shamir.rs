//! Shamir secret sharing over GF(2^8) exactly as sops (HashiCorp Vault's implementation):
//! AES polynomial 0x11B, share = p(x) for every byte followed by the byte x.

use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let carry = a & 0x80;
        a <<= 1;
        if carry != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    p
}

fn inverse(a: u8) -> u8 {
    // a^254 = a^-1 in GF(2^8).
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        if e & 1 != 0 {
            result = mul(result, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    result
}

/// Split `secret` into `parts` shares, any `threshold` of which recover it.
pub(crate) fn split(
    secret: &[u8],
    parts: usize,
    threshold: usize,
) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    if threshold < 2 || threshold > parts || parts > 255 {
        return Err(Error::sops(format!(
            "invalid Shamir parameters: threshold {threshold} with {parts} key groups (need 2 <= threshold <= groups <= 255)"
        )));
    }
    let mut shares: Vec<Zeroizing<Vec<u8>>> = (0..parts)
        .map(|_| Zeroizing::new(Vec::with_capacity(secret.len() + 1)))
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; threshold]);
    for &byte in secret {
        coeffs[0] = byte;
        rand::rngs::OsRng.fill_bytes(&mut coeffs[1..]);
        for (i, share) in shares.iter_mut().enumerate() {
            let x = (i + 1) as u8;
            // Horner evaluation of the polynomial at x.
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = mul(y, x) ^ c;
            }
            share.push(y);
        }
    }
    for (i, share) in shares.iter_mut().enumerate() {
        share.push((i + 1) as u8);
    }
    Ok(shares)
}

/// Recover the secret from shares (Lagrange interpolation at 0).
pub(crate) fn combine(shares: &[Zeroizing<Vec<u8>>]) -> Result<Zeroizing<Vec<u8>>> {
    let len = shares.first().map(|s| s.len()).unwrap_or(0);
    if shares.len() < 2 || len < 2 || shares.iter().any(|s| s.len() != len) {
        return Err(Error::sops(
            "Shamir shares are missing or of different lengths",
        ));
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if *x == 0 || xs[..i].contains(x) {
            return Err(Error::sops("Shamir shares have duplicate or zero indices"));
        }
    }
    let mut secret = Zeroizing::new(vec![0u8; len - 1]);
    for (j, share) in shares.iter().enumerate() {
        // Lagrange basis polynomial l_j(0) = prod_{m != j} x_m / (x_m - x_j); subtraction is XOR.
        let mut basis = 1u8;
        for (m, &xm) in xs.iter().enumerate() {
            if m != j {
                basis = mul(basis, mul(xm, inverse(xm ^ xs[j])));
            }
        }
        for (b, &y) in secret.iter_mut().zip(share.iter()) {
            *b ^= mul(y, basis);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_recovers() {
        let secret = [7u8; 32];
        let shares = split(&secret, 3, 2).unwrap();
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let subset: Vec<_> = pair.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(&combine(&subset).unwrap()[..], &secret[..]);
        }
        assert_eq!(shares[0].len(), 33);
        assert_eq!(shares[1][32], 2);
    }

    #[test]
    fn field_inverse() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1);
        }
    }
}
