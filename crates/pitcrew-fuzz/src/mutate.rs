//! Byte-level mutations of an input, with the target's dictionary of tokens.

use crate::rng::Rng;

/// Inputs never grow past this: the parsers bound their input themselves, and huge inputs only
/// slow the search.
const MAX_LEN: usize = 64 * 1024;

/// Interesting bytes and strings whatever the format.
const GENERIC: &[&str] = &[
    "\0",
    "\n",
    "\r\n",
    "\t",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{2028}",
    "\u{202e}",
    "é",
    "\u{fffd}",
    "\"",
    "'",
    "\\",
    "/",
    "..",
    "-",
    ".",
    " ",
    "0",
    "-1",
    "4294967296",
    "18446744073709551616",
    "1e309",
    "NaN",
    "%s",
    "$(reboot)",
    "\\x2d",
];

/// One to four mutations of `input`; `pool` lends pieces for splicing.
pub fn mutate(rng: &mut Rng, input: &[u8], dictionary: &[&str], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        mutate_once(rng, &mut data, dictionary, pool);
    }
    data.truncate(MAX_LEN);
    data
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, dictionary: &[&str], pool: &[Vec<u8>]) {
    let at = |rng: &mut Rng, len: usize| rng.below(len + 1);
    match rng.below(9) {
        0 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        1 if !data.is_empty() => {
            let i = rng.below(data.len());
            data[i] = rng.next_u64() as u8;
        }
        2 => {
            let i = at(rng, data.len());
            data.insert(i, rng.next_u64() as u8);
        }
        3 if !data.is_empty() => {
            let start = rng.below(data.len());
            let end = (start + rng.size(data.len() - start)).min(data.len());
            data.drain(start..end);
        }
        4 if !data.is_empty() => {
            let start = rng.below(data.len());
            let end = (start + rng.size(data.len() - start)).min(data.len());
            let piece = data[start..end].to_vec();
            let i = at(rng, data.len());
            for _ in 0..=rng.size(64) {
                data.splice(i..i, piece.iter().copied());
                if data.len() > MAX_LEN {
                    break;
                }
            }
        }
        5 | 6 if !dictionary.is_empty() => {
            let token = rng.pick(dictionary);
            let i = at(rng, data.len());
            data.splice(i..i, token.bytes());
        }
        7 => {
            let token = rng.pick(GENERIC);
            let i = at(rng, data.len());
            data.splice(i..i, token.bytes());
        }
        _ if !pool.is_empty() => {
            let other = rng.pick(pool);
            let from = rng.below(other.len() + 1);
            let to = (from + rng.size(other.len() - from)).min(other.len());
            let i = at(rng, data.len());
            data.splice(i..i, other[from..to].iter().copied());
        }
        _ => data.push(rng.next_u64() as u8),
    }
}
