//! The shape of canonical messages, seen generically.
//!
//! Every message body is a *record*: a struct of named fields, each a scalar
//! of a known [`Kind`], a nested record, or a list of records, plus the
//! [`Extras`] a sender added that the standard does not name. The [`record!`]
//! macro writes the struct and its [`Record`] implementation, so that a wire
//! dialect is written once against this trait and works for every
//! transaction: it walks the schema, never a particular struct.
//!
//! Field names are the national interface's names; they are the canonical
//! vocabulary that every dialect maps its own names onto.

use crate::codes::{Admdvs, ClrType, Insutype, MdtrtCertType, MedType, PsnCertType};
use crate::error::ErrorCode;
use crate::money::{Age, DecimalError, Money, Price, Quantity, Ratio};
use crate::time::{Date, DateTime, TimeError};
use std::fmt;

/// The most characters a text field may hold.
pub const TEXT_CHARS_MAX: usize = 2_000;

/// A code table a [`Kind::Code`] field draws from. Dialects with their own
/// code tables translate by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeSet {
    /// [`Insutype`].
    Insutype,
    /// [`MedType`].
    MedType,
    /// [`PsnCertType`].
    PsnCertType,
    /// [`MdtrtCertType`].
    MdtrtCertType,
    /// [`ClrType`].
    ClrType,
    /// [`Admdvs`].
    Admdvs,
}

/// The kind of a scalar field: what its text means and how exact it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Free text (ids, codes without a table, names of institutions).
    Text,
    /// Personal data: names, ID numbers, diagnoses. Never logged in clear.
    Secret,
    /// Money, exact to the fen.
    Money,
    /// Unit price, 6 decimals.
    Price,
    /// Quantity, 4 decimals.
    Quantity,
    /// Ratio, 4 decimals.
    Ratio,
    /// Age in years, 1 decimal.
    Age,
    /// A calendar day.
    Date,
    /// A time to the second.
    DateTime,
    /// A time to the millisecond (`refmsg_time`, `respond_time`).
    Stamp,
    /// A whole number (`infcode`, counts).
    Int,
    /// A code from a table.
    Code(CodeSet),
}

/// A scalar value, borrowed from a record or about to be stored in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar<'a> {
    /// [`Kind::Text`], [`Kind::Secret`] and [`Kind::Code`] values: the national text.
    Text(&'a str),
    /// [`Kind::Money`].
    Money(Money),
    /// [`Kind::Price`].
    Price(Price),
    /// [`Kind::Quantity`].
    Quantity(Quantity),
    /// [`Kind::Ratio`].
    Ratio(Ratio),
    /// [`Kind::Age`].
    Age(Age),
    /// [`Kind::Date`].
    Date(Date),
    /// [`Kind::DateTime`] and [`Kind::Stamp`].
    DateTime(DateTime),
    /// [`Kind::Int`].
    Int(i64),
}

impl Scalar<'_> {
    /// Appends the national interface's text form (without JSON quoting).
    pub fn write_national(&self, kind: Kind, out: &mut String) {
        match self {
            Scalar::Text(text) => out.push_str(text),
            Scalar::Money(m) => m.write_to(out),
            Scalar::Price(v) => v.write_to(out),
            Scalar::Quantity(v) => v.write_to(out),
            Scalar::Ratio(v) => v.write_to(out),
            Scalar::Age(v) => v.write_to(out),
            Scalar::Date(d) => d.write_national(out),
            Scalar::DateTime(t) if kind == Kind::Stamp => t.write_compact_millis(out),
            Scalar::DateTime(t) => t.write_national(out),
            Scalar::Int(i) => {
                // Writing to a String cannot fail.
                let _ = crate::money::write_scaled(out, *i, 0);
            }
        }
    }
}

/// Why a value was refused for a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A decimal that is not exact or out of range.
    #[error(transparent)]
    Decimal(#[from] DecimalError),
    /// A malformed time.
    #[error(transparent)]
    Time(#[from] TimeError),
    /// A code outside its table's form.
    #[error(transparent)]
    Code(#[from] crate::codes::CodeError),
    /// Text too long or with characters no message may carry.
    #[error("text longer than {TEXT_CHARS_MAX} characters or with control characters")]
    Text,
    /// Not a whole number.
    #[error("not a whole number")]
    Int,
    /// A value of another kind: a dialect bug.
    #[error("value of the wrong kind")]
    Mismatch,
}

/// A type that can be stored in a scalar field.
pub trait Value: Sized + Clone + PartialEq + fmt::Debug {
    /// The field kind.
    const KIND: Kind;
    /// The value as a [`Scalar`].
    fn scalar(&self) -> Scalar<'_>;
    /// From a [`Scalar`] of this kind.
    fn from_scalar(value: Scalar<'_>) -> Result<Self, ValueError>;
    /// From the national interface's text form.
    fn from_national(text: &str) -> Result<Self, ValueError>;
}

/// Text of at most [`TEXT_CHARS_MAX`] characters, without control
/// characters (tab, line feed and carriage return allowed) or the
/// noncharacters U+FFFE and U+FFFF.
fn checked_text(text: &str) -> Result<&str, ValueError> {
    // Printable ASCII (nearly every field of every message): one pass without
    // early exits, which the compiler vectorizes.
    if text.len() <= TEXT_CHARS_MAX
        && text.bytes().fold(true, |printable, b| {
            printable & (b.wrapping_sub(0x20) < 0x5f)
        })
    {
        return Ok(text);
    }
    // ASCII with tabs or line ends, or too long: a byte is a character,
    // the controls are the bytes below 0x20 and 0x7f, and no character is
    // decoded; two passes the compiler vectorizes.
    let bad = if text.is_ascii() {
        text.len() > TEXT_CHARS_MAX
            || text
                .bytes()
                .any(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f)
    } else {
        let bad_char = |c: char| {
            (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
                || matches!(c, '\u{FFFE}' | '\u{FFFF}')
        };
        text.len() > TEXT_CHARS_MAX * 4
            || (text.len() > TEXT_CHARS_MAX && text.chars().count() > TEXT_CHARS_MAX)
            || text.chars().any(bad_char)
    };
    if bad {
        return Err(ValueError::Text);
    }
    Ok(text)
}

impl Value for String {
    const KIND: Kind = Kind::Text;
    fn scalar(&self) -> Scalar<'_> {
        Scalar::Text(self)
    }
    fn from_scalar(value: Scalar<'_>) -> Result<Self, ValueError> {
        match value {
            Scalar::Text(text) => Self::from_national(text),
            _ => Err(ValueError::Mismatch),
        }
    }
    fn from_national(text: &str) -> Result<Self, ValueError> {
        checked_text(text).map(str::to_owned)
    }
}

/// Personal data (a name, an ID number, a diagnosis): text whose `Debug`
/// output is redacted so it cannot reach a log by accident.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps personal data.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }
    /// The data itself. Handle with care.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Value for Secret {
    const KIND: Kind = Kind::Secret;
    fn scalar(&self) -> Scalar<'_> {
        Scalar::Text(&self.0)
    }
    fn from_scalar(value: Scalar<'_>) -> Result<Self, ValueError> {
        match value {
            Scalar::Text(text) => Self::from_national(text),
            _ => Err(ValueError::Mismatch),
        }
    }
    fn from_national(text: &str) -> Result<Self, ValueError> {
        checked_text(text).map(|t| Secret(t.to_owned()))
    }
}

macro_rules! copy_value {
    ($ty:ty, $kind:expr, $variant:ident, $parse:expr) => {
        impl Value for $ty {
            const KIND: Kind = $kind;
            fn scalar(&self) -> Scalar<'_> {
                Scalar::$variant(*self)
            }
            fn from_scalar(value: Scalar<'_>) -> Result<Self, ValueError> {
                match value {
                    Scalar::$variant(v) => Ok(v),
                    _ => Err(ValueError::Mismatch),
                }
            }
            fn from_national(text: &str) -> Result<Self, ValueError> {
                #[allow(clippy::redundant_closure_call)]
                ($parse)(text).map_err(ValueError::from)
            }
        }
    };
}

copy_value!(Money, Kind::Money, Money, Money::parse_yuan);
copy_value!(Price, Kind::Price, Price, Price::parse);
copy_value!(Quantity, Kind::Quantity, Quantity, Quantity::parse);
copy_value!(Ratio, Kind::Ratio, Ratio, Ratio::parse);
copy_value!(Age, Kind::Age, Age, Age::parse);
copy_value!(Date, Kind::Date, Date, Date::parse);
copy_value!(DateTime, Kind::DateTime, DateTime, DateTime::parse);
copy_value!(i64, Kind::Int, Int, |text: &str| {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty()
        || digits.len() > 15
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return Err(ValueError::Int);
    }
    text.parse::<i64>().map_err(|_| ValueError::Int)
});

/// A time to the millisecond, written `yyyyMMddHHmmssSSS` by the national interface.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Stamp(pub DateTime);

impl Value for Stamp {
    const KIND: Kind = Kind::Stamp;
    fn scalar(&self) -> Scalar<'_> {
        Scalar::DateTime(self.0)
    }
    fn from_scalar(value: Scalar<'_>) -> Result<Self, ValueError> {
        match value {
            Scalar::DateTime(t) => Ok(Stamp(t)),
            _ => Err(ValueError::Mismatch),
        }
    }
    /// `yyyyMMddHHmmssSSS`; a platform that writes `yyyy-MM-dd HH:mm:ss` is understood too.
    fn from_national(text: &str) -> Result<Self, ValueError> {
        match DateTime::parse_compact(text) {
            Ok(t) => Ok(Stamp(t)),
            Err(e) => DateTime::parse(text).map(Stamp).map_err(|_| e.into()),
        }
    }
}

macro_rules! code_value {
    ($ty:ty, $set:ident) => {
        impl Value for $ty {
            const KIND: Kind = Kind::Code(CodeSet::$set);
            fn scalar(&self) -> Scalar<'_> {
                Scalar::Text(self.code())
            }
            fn from_scalar(value: Scalar<'_>) -> Result<Self, ValueError> {
                match value {
                    Scalar::Text(text) => Self::from_national(text),
                    _ => Err(ValueError::Mismatch),
                }
            }
            fn from_national(text: &str) -> Result<Self, ValueError> {
                Ok(<$ty>::parse(text)?)
            }
        }
    };
}

code_value!(Insutype, Insutype);
code_value!(MedType, MedType);
code_value!(PsnCertType, PsnCertType);
code_value!(MdtrtCertType, MdtrtCertType);
code_value!(ClrType, ClrType);

/// An admdvs is stored as its typed code; `scalar()` needs its text, kept alongside.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region {
    code: Admdvs,
    text: [u8; 6],
}

impl Region {
    /// From a typed code.
    pub fn new(code: Admdvs) -> Region {
        let mut text = [b'0'; 6];
        let mut value = code.value();
        for slot in text.iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        Region { code, text }
    }
    /// The typed code.
    pub fn admdvs(self) -> Admdvs {
        self.code
    }
    /// The six digits.
    pub fn as_str(&self) -> &str {
        // Six ASCII digits are always UTF-8.
        std::str::from_utf8(&self.text).unwrap_or("000000")
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Value for Region {
    const KIND: Kind = Kind::Code(CodeSet::Admdvs);
    fn scalar(&self) -> Scalar<'_> {
        Scalar::Text(self.as_str())
    }
    fn from_scalar(value: Scalar<'_>) -> Result<Self, ValueError> {
        match value {
            Scalar::Text(text) => Self::from_national(text),
            _ => Err(ValueError::Mismatch),
        }
    }
    fn from_national(text: &str) -> Result<Self, ValueError> {
        Ok(Region::new(Admdvs::parse(text)?))
    }
}

/// Keys a sender added that the standard does not name, kept in order with
/// their values as compact JSON text so they survive translation.
///
/// `Debug` shows the keys only: an unknown key may hold personal data.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Extras(pub Vec<(String, String)>);

impl Extras {
    /// The most extra keys one record may carry.
    pub const KEYS_MAX: usize = 64;
    /// The most bytes of JSON text one extra value may hold.
    pub const VALUE_BYTES_MAX: usize = 16 * 1024;

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether one more key, whose value is `value_bytes` of JSON text, may
    /// be added: not a key already held, and within the bounds. Otherwise the
    /// refusal's code and detail (naming the key's length, never the key), for
    /// the dialect to place where it was found.
    pub fn room_for(&self, key: &str, value_bytes: usize) -> Result<(), (ErrorCode, String)> {
        if self.0.iter().any(|(k, _)| k == key) {
            return Err((
                ErrorCode::DuplicateField,
                format!("extra key given twice ({} bytes of key)", key.len()),
            ));
        }
        if self.0.len() == Extras::KEYS_MAX
            || value_bytes > Extras::VALUE_BYTES_MAX
            || key.len() > 64
        {
            return Err((
                ErrorCode::TooMany,
                "too many or too large keys outside the standard".to_owned(),
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Extras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// The shape of a field.
#[derive(Clone, Copy)]
pub enum Shape {
    /// A scalar of this kind.
    Scalar(Kind),
    /// A nested record.
    Record(fn() -> &'static Schema),
    /// A list of records.
    List(fn() -> &'static Schema),
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Scalar(kind) => write!(f, "{kind:?}"),
            Shape::Record(schema) => write!(f, "Record({})", schema().name),
            Shape::List(schema) => write!(f, "List({})", schema().name),
        }
    }
}

/// One field of a record.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    /// The national field name.
    pub name: &'static str,
    /// What it holds.
    pub shape: Shape,
    /// Whether a message without it is refused.
    pub required: bool,
    /// What the field means (from the standard), for specs and errors.
    pub doc: &'static str,
}

/// A record type's fields.
#[derive(Debug)]
pub struct Schema {
    /// The record's name.
    pub name: &'static str,
    /// Its fields, in the order they are written.
    pub fields: &'static [FieldDef],
}

impl Schema {
    /// The index of a field by its national name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// [`Schema::index_of`], looking from `from` on first, then before it:
    /// fields usually come in schema order, so the one after the last found
    /// is the likely next. The same answer, as names are distinct in a schema.
    pub fn index_of_from(&self, name: &str, from: usize) -> Option<usize> {
        let from = from.min(self.fields.len());
        let (before, after) = self.fields.split_at(from);
        match after.iter().position(|f| f.name == name) {
            Some(i) => Some(from + i),
            None => before.iter().position(|f| f.name == name),
        }
    }
}

/// A field, for reading.
pub enum FieldRef<'a> {
    /// A scalar, `None` when absent.
    Scalar(Option<Scalar<'a>>),
    /// A nested record, `None` when absent.
    Record(Option<&'a dyn Record>),
    /// A list of records.
    List(&'a dyn RecordList),
}

/// A field, for writing.
pub enum FieldMut<'a> {
    /// A scalar.
    Scalar(&'a mut dyn ScalarSlot),
    /// A nested record: the slot creates it when absent.
    Record(&'a mut dyn RecordSlot),
    /// A list of records.
    List(&'a mut dyn RecordList),
}

/// Storage of a scalar field: `Option<T>`, `None` when absent. Required
/// fields are `Option` too; the schema says which, and [`first_missing`] finds them.
pub trait ScalarSlot {
    /// The field kind.
    fn kind(&self) -> Kind;
    /// Stores a value.
    fn set(&mut self, value: Scalar<'_>) -> Result<(), ValueError>;
    /// Stores a value given in the national text form.
    fn set_national(&mut self, text: &str) -> Result<(), ValueError>;
    /// Whether a value is stored (a decoder refuses a field given twice).
    fn is_set(&self) -> bool;
    /// Removes the value.
    fn clear(&mut self);
}

/// Storage of a nested record (`R` or `Option<R>`).
pub trait RecordSlot {
    /// The record, created empty when absent.
    fn get_or_insert(&mut self) -> &mut dyn Record;
    /// The record, if present.
    fn existing(&mut self) -> Option<&mut dyn Record>;
}

/// A list of records.
pub trait RecordList {
    /// The element schema.
    fn element_schema(&self) -> &'static Schema;
    /// How many.
    fn len(&self) -> usize;
    /// Whether empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// One element.
    fn get(&self, index: usize) -> Option<&dyn Record>;
    /// Appends an empty element and returns it.
    fn push_default(&mut self) -> &mut dyn Record;
    /// One element, for writing (`index` below `len()`).
    fn get_mut(&mut self, index: usize) -> &mut dyn Record;
}

/// A canonical record, seen generically. Implemented by [`record!`].
pub trait Record: fmt::Debug + Send + Sync {
    /// The record's schema.
    fn schema(&self) -> &'static Schema;
    /// Reads the field at `index` of the schema.
    fn field(&self, index: usize) -> FieldRef<'_>;
    /// Writes the field at `index` of the schema.
    fn field_mut(&mut self, index: usize) -> FieldMut<'_>;
    /// The sender's extra keys.
    fn extras(&self) -> &Extras;
    /// The sender's extra keys, for writing.
    fn extras_mut(&mut self) -> &mut Extras;
}

/// A record type known statically.
pub trait RecordType: Record + Default + Clone + PartialEq + 'static {
    /// The schema.
    fn static_schema() -> &'static Schema;
}

/// How a Rust field type appears in a schema and is reached generically.
pub trait FieldType {
    /// Its shape.
    fn shape() -> Shape;
    /// Reading.
    fn field_ref(&self) -> FieldRef<'_>;
    /// Writing.
    fn field_mut(&mut self) -> FieldMut<'_>;
}

/// An optional scalar.
impl<T: Value + Send + Sync + 'static> ScalarSlot for Option<T> {
    fn kind(&self) -> Kind {
        T::KIND
    }
    fn set(&mut self, value: Scalar<'_>) -> Result<(), ValueError> {
        *self = Some(T::from_scalar(value)?);
        Ok(())
    }
    fn set_national(&mut self, text: &str) -> Result<(), ValueError> {
        *self = Some(T::from_national(text)?);
        Ok(())
    }
    fn is_set(&self) -> bool {
        self.is_some()
    }
    fn clear(&mut self) {
        *self = None;
    }
}

/// Wraps an optional scalar for [`FieldType`].
pub fn optional_field_ref<T: Value>(value: &Option<T>) -> FieldRef<'_> {
    FieldRef::Scalar(value.as_ref().map(Value::scalar))
}

impl<R: RecordType> RecordSlot for R {
    fn get_or_insert(&mut self) -> &mut dyn Record {
        self
    }
    fn existing(&mut self) -> Option<&mut dyn Record> {
        Some(self)
    }
}

impl<R: RecordType> RecordSlot for Option<R> {
    fn get_or_insert(&mut self) -> &mut dyn Record {
        self.get_or_insert_with(R::default)
    }
    fn existing(&mut self) -> Option<&mut dyn Record> {
        self.as_mut().map(|r| r as &mut dyn Record)
    }
}

impl<R: RecordType> RecordList for Vec<R> {
    fn element_schema(&self) -> &'static Schema {
        R::static_schema()
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn get(&self, index: usize) -> Option<&dyn Record> {
        self.as_slice().get(index).map(|r| r as &dyn Record)
    }
    fn get_mut(&mut self, index: usize) -> &mut dyn Record {
        &mut self[index]
    }
    fn push_default(&mut self) -> &mut dyn Record {
        self.push(R::default());
        let last = Vec::len(self) - 1;
        &mut self[last]
    }
}

/// Writes a canonical record struct and its [`Record`] implementation.
///
/// Each field is `name: MODE Type` with MODE one of `req` (required scalar,
/// stored as `Option` and checked by [`first_missing`]), `opt` (optional scalar), `rec` (required record), `optrec` (optional
/// record) or `list` (list of records). Every struct also gets `extras`.
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* $field:ident : $mode:ident $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $crate::record!(@type $mode $ty), )*
            /// Keys the sender added that the standard does not name.
            pub extras: $crate::record::Extras,
        }

        impl $crate::record::Record for $name {
            fn schema(&self) -> &'static $crate::record::Schema {
                <Self as $crate::record::RecordType>::static_schema()
            }
            #[allow(unused_assignments, unused_mut, unused_variables)]
            fn field(&self, index: usize) -> $crate::record::FieldRef<'_> {
                let mut at = 0usize;
                $(
                    if index == at {
                        return $crate::record!(@ref $mode self.$field);
                    }
                    at += 1;
                )*
                $crate::record::FieldRef::Scalar(None)
            }
            #[allow(unused_assignments, unused_mut, unused_variables)]
            fn field_mut(&mut self, index: usize) -> $crate::record::FieldMut<'_> {
                let mut at = 0usize;
                $(
                    if index == at {
                        return $crate::record!(@mut $mode self.$field);
                    }
                    at += 1;
                )*
                unreachable!("field index {index} beyond the schema of {}", stringify!($name))
            }
            fn extras(&self) -> &$crate::record::Extras {
                &self.extras
            }
            fn extras_mut(&mut self) -> &mut $crate::record::Extras {
                &mut self.extras
            }
        }

        impl $crate::record::RecordType for $name {
            fn static_schema() -> &'static $crate::record::Schema {
                static SCHEMA: $crate::record::Schema = $crate::record::Schema {
                    name: stringify!($name),
                    fields: &[
                        $( $crate::record::FieldDef {
                            name: stringify!($field),
                            shape: $crate::record!(@shape $mode $ty),
                            required: $crate::record!(@required $mode),
                            doc: concat!($($doc),*),
                        }, )*
                    ],
                };
                &SCHEMA
            }
        }
    };

    (@type req $ty:ty) => { Option<$ty> };
    (@type opt $ty:ty) => { Option<$ty> };
    (@type rec $ty:ty) => { $ty };
    (@type optrec $ty:ty) => { Option<$ty> };
    (@type list $ty:ty) => { Vec<$ty> };

    (@ref req $e:expr) => { $crate::record::optional_field_ref(&$e) };
    (@ref opt $e:expr) => { $crate::record::optional_field_ref(&$e) };
    (@ref rec $e:expr) => { $crate::record::FieldRef::Record(Some(&$e)) };
    (@ref optrec $e:expr) => { $crate::record::FieldRef::Record($e.as_ref().map(|r| r as &dyn $crate::record::Record)) };
    (@ref list $e:expr) => { $crate::record::FieldRef::List(&$e) };

    (@mut req $e:expr) => { $crate::record::FieldMut::Scalar(&mut $e) };
    (@mut opt $e:expr) => { $crate::record::FieldMut::Scalar(&mut $e) };
    (@mut rec $e:expr) => { $crate::record::FieldMut::Record(&mut $e) };
    (@mut optrec $e:expr) => { $crate::record::FieldMut::Record(&mut $e) };
    (@mut list $e:expr) => { $crate::record::FieldMut::List(&mut $e) };

    (@shape req $ty:ty) => { $crate::record::Shape::Scalar(<$ty as $crate::record::Value>::KIND) };
    (@shape opt $ty:ty) => { $crate::record::Shape::Scalar(<$ty as $crate::record::Value>::KIND) };
    (@shape rec $ty:ty) => { $crate::record::Shape::Record(<$ty as $crate::record::RecordType>::static_schema) };
    (@shape optrec $ty:ty) => { $crate::record::Shape::Record(<$ty as $crate::record::RecordType>::static_schema) };
    (@shape list $ty:ty) => { $crate::record::Shape::List(<$ty as $crate::record::RecordType>::static_schema) };

    (@required req) => { true };
    (@required rec) => { true };
    (@required $other:ident) => { false };
}

/// Where in a message a field is, for error messages: `input.data.psn_no`,
/// `input.feedetail[3].cnt`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// The root.
    pub fn root() -> Path {
        Path(String::new())
    }
    /// A named child.
    pub fn key(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_owned())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }
    /// A list element.
    pub fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }
    /// As text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first required field missing anywhere in `record`, with its path.
/// The path is written only when a field is missing: a complete message
/// (nearly every one, with its fee lines) costs no string at all.
pub fn first_missing(record: &dyn Record, path: &Path) -> Option<Path> {
    let mut steps = Vec::new();
    if !missing_steps(record, &mut steps) {
        return None;
    }
    Some(
        steps
            .iter()
            .rev()
            .fold(path.clone(), |path, step| match *step {
                Step::Key(name) => path.key(name),
                Step::Index(i) => path.index(i),
            }),
    )
}

/// One step of a path, innermost first in [`missing_steps`].
enum Step {
    Key(&'static str),
    Index(usize),
}

/// Whether a required field is missing in `record`; if so `steps` holds
/// the way to it from `record`, innermost first.
fn missing_steps(record: &dyn Record, steps: &mut Vec<Step>) -> bool {
    let schema = record.schema();
    for (index, def) in schema.fields.iter().enumerate() {
        let found = match record.field(index) {
            FieldRef::Scalar(None | Some(Scalar::Text(""))) | FieldRef::Record(None) => {
                def.required
            }
            FieldRef::Record(Some(child)) => missing_steps(child, steps),
            FieldRef::List(list) => (0..list.len()).any(|i| {
                let missing = list.get(i).is_some_and(|child| missing_steps(child, steps));
                if missing {
                    steps.push(Step::Index(i));
                }
                missing
            }),
            _ => false,
        };
        if found {
            steps.push(Step::Key(def.name));
            return true;
        }
    }
    false
}

/// Removes every piece of personal data from `record`: each [`Kind::Secret`]
/// field, and the sender's extra keys (which may hold anything). What is left
/// — ids, codes, amounts, times — may be stored and logged.
pub fn redact(record: &mut dyn Record) {
    let schema = record.schema();
    for (index, def) in schema.fields.iter().enumerate() {
        match (record.field_mut(index), def.shape) {
            (FieldMut::Scalar(slot), Shape::Scalar(Kind::Secret)) => slot.clear(),
            (FieldMut::Record(slot), _) => {
                if let Some(child) = slot.existing() {
                    redact(child);
                }
            }
            (FieldMut::List(list), _) => {
                for i in 0..list.len() {
                    redact(list.get_mut(i));
                }
            }
            _ => {}
        }
    }
    record.extras_mut().0.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::settlement::{SetlInfo, SettlementOutput};
    use crate::money::Money;

    #[test]
    fn redaction_keeps_money_and_ids_and_drops_personal_data() {
        let mut out = SettlementOutput {
            setlinfo: SetlInfo {
                setl_id: Some("S1".into()),
                psn_name: Some(Secret::new("张伟")),
                certno: Some(Secret::new("11010519491231002X")),
                medfee_sumamt: Money::from_fen(10_020),
                extras: Extras(vec![("psn_pay".into(), "43.1".into())]),
                ..Default::default()
            },
            ..Default::default()
        };
        redact(&mut out);
        assert_eq!(out.setlinfo.setl_id.as_deref(), Some("S1"));
        assert_eq!(out.setlinfo.medfee_sumamt, Money::from_fen(10_020));
        assert_eq!((out.setlinfo.psn_name, out.setlinfo.certno), (None, None));
        assert!(out.setlinfo.extras.is_empty());
    }

    /// The rule [`checked_text`] implements, character by character.
    fn text_rule(text: &str) -> bool {
        text.chars().count() <= TEXT_CHARS_MAX
            && !text.chars().any(|c| {
                (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
                    || matches!(c, '\u{FFFE}' | '\u{FFFF}')
            })
    }

    #[test]
    fn text_at_the_limits() {
        let ascii = "a".repeat(TEXT_CHARS_MAX);
        assert!(checked_text(&ascii).is_ok());
        assert!(checked_text(&format!("{ascii}a")).is_err());
        let hanzi = "张".repeat(TEXT_CHARS_MAX);
        assert!(checked_text(&hanzi).is_ok());
        assert!(checked_text(&format!("{hanzi}a")).is_err());
        for bad in [
            "a\u{0}b",
            "\u{1f}",
            "x\u{7f}",
            "\u{85}",
            "张\u{9f}",
            "\u{FFFE}",
            "a\u{FFFF}",
        ] {
            assert!(checked_text(bad).is_err(), "{bad:?}");
        }
        for good in ["", "a\tb\r\n", "张伟 1", "\u{FFFD}", "~"] {
            assert!(checked_text(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn extras_take_a_new_key_within_their_bounds_only() {
        let mut extras = Extras::default();
        assert_eq!(extras.room_for("k", 10), Ok(()));
        extras.0.push(("k".into(), "1".into()));
        let code = |r: Result<(), (ErrorCode, String)>| r.map_err(|(code, _)| code);
        assert_eq!(
            code(extras.room_for("k", 1)),
            Err(ErrorCode::DuplicateField)
        );
        assert_eq!(
            code(extras.room_for("v", Extras::VALUE_BYTES_MAX + 1)),
            Err(ErrorCode::TooMany)
        );
        assert_eq!(
            code(extras.room_for(&"x".repeat(65), 1)),
            Err(ErrorCode::TooMany)
        );
        assert_eq!(
            extras.room_for(&"x".repeat(64), Extras::VALUE_BYTES_MAX),
            Ok(())
        );
        while extras.0.len() < Extras::KEYS_MAX {
            extras.0.push((format!("k{}", extras.0.len()), "1".into()));
        }
        assert_eq!(code(extras.room_for("new", 1)), Err(ErrorCode::TooMany));
    }

    proptest::proptest! {
        #[test]
        fn checked_text_follows_the_rule(
            text in proptest::string::string_regex("(?s).{0,40}").unwrap_or_else(|_| unreachable!()),
            repeat in 1usize..120,
        ) {
            for candidate in [text.clone(), text.repeat(repeat)] {
                proptest::prop_assert_eq!(checked_text(&candidate).is_ok(), text_rule(&candidate), "{:?}", candidate);
            }
        }
    }
}
