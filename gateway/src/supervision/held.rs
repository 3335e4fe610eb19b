//! Settlements and stays as the windows hold them: compact records. A
//! settlement is one [`Held`] (80 bytes) in a slab, named by its id in its
//! person's chain and in the indexes — never cloned per rule or per index.
//! Its codes are interned ([`crate::supervision::codes`]), the identifiers
//! the rules only compare are digests ([`crate::supervision::keys`]), and
//! the identifiers a signal shows as evidence (mdtrt_id, setl_id) share one
//! small allocation with the drugs bought ([`Tail`]). [`HeldSettlement`] and
//! [`HeldStay`] show a record to the rules with its codes as text.

use crate::supervision::codes::{Code, Codes};
use crate::supervision::facts::SettleKind;
use crate::supervision::keys::Digest;
use contracts::Money;

/// A settlement held.
#[derive(Debug)]
pub struct Held {
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// Total medical fees.
    pub amount: Money,
    /// The sender's msgid.
    pub msgid: Digest,
    /// The invoice number.
    pub invono: Option<Digest>,
    /// The bill's digest.
    pub bill: Option<Digest>,
    /// The person's id in the windows.
    pub person: u32,
    /// The person's next settlement (`slab::NONE` for the last).
    pub next: u32,
    /// The institution.
    pub institution: Code,
    /// The insured region.
    pub insured: Code,
    /// The treatment region.
    pub treatment: Code,
    /// Which settlement.
    pub kind: SettleKind,
    /// Its visit and settlement ids and its drugs.
    pub tail: Tail,
}

/// The visit id, the settlement id and the drugs of a settlement, in one
/// allocation (none when all are absent): a byte of flags (bit 0: a visit
/// id, bit 1: a settlement id), then each id present as its length (LEB128)
/// and its UTF-8 bytes, then per drug its code (4 bytes) and quantity (8
/// bytes, scaled by 10⁴), little-endian.
#[derive(Debug, Default)]
pub struct Tail(Box<[u8]>);

const VISIT: u8 = 1;
const SETTLEMENT: u8 = 2;
const DRUG: usize = 12;

fn put_text(out: &mut Vec<u8>, text: &str) {
    let mut len = text.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(text.as_bytes());
}

/// The text at the start of `bytes` and what follows it.
fn take_text(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let mut len = 0usize;
    let mut shift = 0;
    let mut rest = bytes;
    loop {
        let (&byte, after) = rest.split_first()?;
        rest = after;
        len |= usize::from(byte & 0x7f).checked_shl(shift)?;
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    let (text, rest) = rest.split_at_checked(len)?;
    Some((std::str::from_utf8(text).ok()?, rest))
}

impl Tail {
    /// The tail of these ids and drugs.
    pub fn new(mdtrt_id: Option<&str>, setl_id: Option<&str>, drugs: &[(Code, i64)]) -> Tail {
        if mdtrt_id.is_none() && setl_id.is_none() && drugs.is_empty() {
            return Tail::default();
        }
        let ids = mdtrt_id.map_or(0, str::len) + setl_id.map_or(0, str::len);
        let mut out = Vec::with_capacity(1 + 10 + ids + DRUG * drugs.len());
        out.push(
            if mdtrt_id.is_some() { VISIT } else { 0 }
                | if setl_id.is_some() { SETTLEMENT } else { 0 },
        );
        for id in [mdtrt_id, setl_id].into_iter().flatten() {
            put_text(&mut out, id);
        }
        for (code, quantity) in drugs {
            out.extend_from_slice(&code.to_bytes());
            out.extend_from_slice(&quantity.to_le_bytes());
        }
        Tail(out.into_boxed_slice())
    }

    /// The visit id, the settlement id and the drugs' bytes.
    fn parts(&self) -> (Option<&str>, Option<&str>, &[u8]) {
        let Some((&flags, mut rest)) = self.0.split_first() else {
            return (None, None, &[]);
        };
        let mut ids = [None, None];
        for (i, flag) in [VISIT, SETTLEMENT].into_iter().enumerate() {
            if flags & flag != 0 {
                let Some((id, after)) = take_text(rest) else {
                    return (None, None, &[]);
                };
                ids[i] = Some(id);
                rest = after;
            }
        }
        (ids[0], ids[1], rest)
    }

    /// The visit id.
    pub fn mdtrt_id(&self) -> Option<&str> {
        self.parts().0
    }

    /// The settlement id.
    pub fn setl_id(&self) -> Option<&str> {
        self.parts().1
    }

    /// The drugs: code and quantity.
    pub fn drugs(&self) -> impl Iterator<Item = (Code, i64)> + '_ {
        self.parts().2.chunks_exact(DRUG).map(|drug| {
            let mut code = [0u8; 4];
            let mut quantity = [0u8; 8];
            code.copy_from_slice(&drug[..4]);
            quantity.copy_from_slice(&drug[4..]);
            (Code::from_bytes(code), i64::from_le_bytes(quantity))
        })
    }

    /// Bytes allocated.
    pub fn bytes(&self) -> usize {
        self.0.len()
    }
}

/// An inpatient stay held.
#[derive(Debug)]
pub struct Stay {
    /// The institution.
    pub institution: Code,
    /// The insured region.
    pub insured: Code,
    /// The treatment region.
    pub treatment: Code,
    /// Admission time.
    pub begin_ms: i64,
    /// Discharge time, once known.
    pub end_ms: Option<i64>,
    /// When observed.
    pub at_ms: i64,
    /// The admission's msgid.
    pub msgid: Digest,
    /// The visit id.
    pub mdtrt_id: Option<Box<str>>,
}

/// A settlement held, as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct HeldSettlement<'a> {
    held: &'a Held,
    codes: &'a Codes,
}

impl<'a> HeldSettlement<'a> {
    /// `held`, its codes read in `codes`.
    pub fn new(held: &'a Held, codes: &'a Codes) -> Self {
        HeldSettlement { held, codes }
    }

    /// The institution's code.
    pub fn institution(&self) -> &'a str {
        self.codes.text(self.held.institution)
    }

    /// The insured region.
    pub fn insured(&self) -> &'a str {
        self.codes.text(self.held.insured)
    }

    /// The treatment region.
    pub fn treatment(&self) -> &'a str {
        self.codes.text(self.held.treatment)
    }

    /// Which settlement.
    pub fn kind(&self) -> SettleKind {
        self.held.kind
    }

    /// Total medical fees.
    pub fn amount(&self) -> Money {
        self.held.amount
    }

    /// When.
    pub fn at_ms(&self) -> i64 {
        self.held.at_ms
    }

    /// The sender's msgid, as a digest.
    pub fn msgid(&self) -> Digest {
        self.held.msgid
    }

    /// The bill's digest, as a digest.
    pub fn bill(&self) -> Option<Digest> {
        self.held.bill
    }

    /// The visit.
    pub fn mdtrt_id(&self) -> Option<&'a str> {
        self.held.tail.mdtrt_id()
    }

    /// The settlement id.
    pub fn setl_id(&self) -> Option<&'a str> {
        self.held.tail.setl_id()
    }

    /// Drugs bought: code and quantity (scaled by 10⁴).
    pub fn drugs(&self) -> impl Iterator<Item = (&'a str, i64)> + 'a {
        let codes = self.codes;
        self.held
            .tail
            .drugs()
            .map(move |(code, quantity)| (codes.text(code), quantity))
    }
}

/// A stay held, as the rules read it.
#[derive(Debug, Clone, Copy)]
pub struct HeldStay<'a> {
    stay: &'a Stay,
    codes: &'a Codes,
}

impl<'a> HeldStay<'a> {
    /// `stay`, its codes read in `codes`.
    pub fn new(stay: &'a Stay, codes: &'a Codes) -> Self {
        HeldStay { stay, codes }
    }

    /// The institution's code.
    pub fn institution(&self) -> &'a str {
        self.codes.text(self.stay.institution)
    }

    /// The insured region.
    pub fn insured(&self) -> &'a str {
        self.codes.text(self.stay.insured)
    }

    /// The treatment region.
    pub fn treatment(&self) -> &'a str {
        self.codes.text(self.stay.treatment)
    }

    /// Admission time.
    pub fn begin_ms(&self) -> i64 {
        self.stay.begin_ms
    }

    /// Discharge time, once known.
    pub fn end_ms(&self) -> Option<i64> {
        self.stay.end_ms
    }

    /// When observed.
    pub fn at_ms(&self) -> i64 {
        self.stay.at_ms
    }

    /// The admission's msgid, as a digest.
    pub fn msgid(&self) -> Digest {
        self.stay.msgid
    }

    /// The visit.
    pub fn mdtrt_id(&self) -> Option<&'a str> {
        self.stay.mdtrt_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_gives_back_what_it_was_made_of() {
        let mut codes = Codes::default();
        let drug = [(codes.intern("XK000123"), 20_000)];
        let long = "s".repeat(300);
        for (mdtrt_id, setl_id) in [
            (None, None),
            (Some("D1"), None),
            (None, Some("")),
            (Some(""), Some(long.as_str())),
        ] {
            for drugs in [&[][..], &drug[..]] {
                let tail = Tail::new(mdtrt_id, setl_id, drugs);
                assert_eq!(tail.mdtrt_id(), mdtrt_id);
                assert_eq!(tail.setl_id(), setl_id);
                assert_eq!(tail.drugs().collect::<Vec<_>>(), drugs.to_vec());
            }
        }
        assert_eq!(Tail::new(None, None, &[]).bytes(), 0);
    }

    #[test]
    fn a_settlement_is_held_in_80_bytes() {
        assert_eq!(std::mem::size_of::<Option<Held>>(), 80);
    }
}
