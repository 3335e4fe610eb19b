//! Random canonical messages from a seed, for property tests of every
//! dialect and for load generation. Every value is valid for its kind, so
//! any message made here must survive `decode(encode(m))` in every dialect.

use crate::codes::{ClrType, Insutype, MdtrtCertType, MedType, PsnCertType};
use crate::model::envelope::{AnswerEnvelope, RequestEnvelope};
use crate::money::Money;
use crate::record::{CodeSet, FieldMut, Kind, Record, Scalar, Shape};
use crate::time::{Date, DateTime};
use crate::transaction::{AnswerBody, Infno, RequestBody};
use crate::{Answer, Request};

/// A small, fast, seeded generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
    /// A number in `low..=high`.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        let span = (high - low) as u64 + 1;
        low + self.below(span) as i64
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Characters chosen to stress translation: CJK, a character outside the
/// BMP, quotes, markup, escapes, whitespace.
const TEXT_PIECES: &[&str] = &[
    "张", "伟", "医", "院", "𠀀", "𪚥", "a", "Z", "0", "9", " ", "\"", "'", "<", ">", "&", "\\",
    "/", "\n", "\t", "\r", "é", "・", "（", "）", "-", "_", ".",
];

fn text(rng: &mut Rng) -> String {
    let len = 1 + rng.below(12);
    let mut s = String::new();
    for _ in 0..len {
        let piece: &&str = rng.pick(TEXT_PIECES);
        s.push_str(piece);
    }
    s
}

fn code(rng: &mut Rng, known: &[&str]) -> String {
    if rng.chance(80) {
        (*rng.pick(known)).to_owned()
    } else {
        format!("X{}", rng.below(10_000))
    }
}

fn date(rng: &mut Rng) -> Option<Date> {
    let y = rng.between(1900, 2099) as i32;
    // Days up to 28 exist in every month.
    Date::from_ymd(y, rng.between(1, 12) as u32, rng.between(1, 28) as u32)
}

fn date_time(rng: &mut Rng, with_millis: bool) -> Option<DateTime> {
    use chrono::Datelike;
    let d = date(rng)?.naive();
    let ms = if with_millis {
        rng.below(1000) as u32
    } else {
        0
    };
    DateTime::from_civil(
        d.year(),
        d.month(),
        d.day(),
        rng.below(24) as u32,
        rng.below(60) as u32,
        rng.below(60) as u32,
        ms,
    )
}

fn fill_scalar(rng: &mut Rng, kind: Kind, slot: &mut dyn crate::record::ScalarSlot) {
    let magnitude = |rng: &mut Rng, max: i64| -> i64 {
        match rng.below(4) {
            0 => 0,
            1 => rng.between(-max, max),
            _ => rng.between(-100_000_000, 100_000_000),
        }
    };
    let result = match kind {
        Kind::Text | Kind::Secret => slot.set(Scalar::Text(&text(rng))),
        Kind::Money => slot.set(Scalar::Money(
            Money::from_fen(magnitude(rng, Money::MAX_ABS_FEN)).unwrap_or(Money::ZERO),
        )),
        Kind::Price => slot.set(Scalar::Price(
            crate::Price::from_scaled(magnitude(rng, 10_000_000_000_000_000)).unwrap_or_default(),
        )),
        Kind::Quantity => slot.set(Scalar::Quantity(
            crate::Quantity::from_scaled(magnitude(rng, 10_000_000_000_000_000))
                .unwrap_or_default(),
        )),
        Kind::Ratio => slot.set(Scalar::Ratio(
            crate::Ratio::from_scaled(rng.between(0, 10_000)).unwrap_or_default(),
        )),
        Kind::Age => slot.set(Scalar::Age(
            crate::Age::from_scaled(rng.between(0, 1_200)).unwrap_or_default(),
        )),
        Kind::Date => date(rng).map_or(Ok(()), |d| slot.set(Scalar::Date(d))),
        Kind::DateTime => date_time(rng, false).map_or(Ok(()), |t| slot.set(Scalar::DateTime(t))),
        Kind::Stamp => date_time(rng, true).map_or(Ok(()), |t| slot.set(Scalar::DateTime(t))),
        Kind::Int => slot.set(Scalar::Int(magnitude(rng, 999_999_999_999_999))),
        Kind::Code(set) => {
            let value = match set {
                CodeSet::Insutype => code(rng, Insutype::KNOWN),
                CodeSet::MedType => code(rng, MedType::KNOWN),
                CodeSet::PsnCertType => code(rng, PsnCertType::KNOWN),
                CodeSet::MdtrtCertType => code(rng, MdtrtCertType::KNOWN),
                CodeSet::ClrType => code(rng, ClrType::KNOWN),
                CodeSet::Admdvs => rng
                    .pick(&[
                        "110000", "110105", "120000", "120101", "130000", "130100", "130600",
                        "133100", "310000",
                    ])
                    .to_string(),
            };
            slot.set(Scalar::Text(&value))
        }
    };
    debug_assert!(result.is_ok(), "sample values are valid for their kind");
}

/// Fills `record` with random fields (each present with probability
/// `presence`%), up to `list_max` items a list, and a few extra keys.
pub fn fill(record: &mut dyn Record, rng: &mut Rng, presence: u64, list_max: u64) {
    let schema = record.schema();
    for (index, def) in schema.fields.iter().enumerate() {
        if !rng.chance(presence) {
            continue;
        }
        match (record.field_mut(index), def.shape) {
            (FieldMut::Scalar(slot), Shape::Scalar(kind)) => fill_scalar(rng, kind, slot),
            (FieldMut::Record(slot), _) => fill(slot.get_or_insert(), rng, presence, list_max),
            (FieldMut::List(list), _) => {
                for _ in 0..rng.below(list_max + 1) {
                    fill(list.push_default(), rng, presence, list_max);
                }
            }
            _ => {}
        }
    }
    if rng.chance(20) {
        let extras = record.extras_mut();
        let value = match rng.below(4) {
            0 => "null".to_owned(),
            1 => format!("{}", rng.between(-1000, 1000)),
            2 => "\"成功\"".to_owned(),
            _ => "{\"a\":[1,2.50,\"x\"]}".to_owned(),
        };
        extras
            .0
            .push((format!("zz_extra_{}", rng.below(100)), value));
    }
}

/// A random request of transaction `infno`.
pub fn request(infno: Infno, rng: &mut Rng) -> Request {
    let mut envelope = RequestEnvelope::default();
    fill(&mut envelope, rng, 60, 3);
    let mut input = RequestBody::empty(infno);
    fill(input.record_mut(), rng, 60, 3);
    Request { envelope, input }
}

/// A random answer of transaction `infno`.
pub fn answer(infno: Infno, rng: &mut Rng) -> Answer {
    let mut envelope = AnswerEnvelope::default();
    fill(&mut envelope, rng, 60, 3);
    let output = rng.chance(80).then(|| {
        let mut body = AnswerBody::empty(infno);
        fill(body.record_mut(), rng, 60, 3);
        body
    });
    Answer { envelope, output }
}
