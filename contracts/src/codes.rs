//! The national code tables the gateway reasons about, each an enum with an
//! escape (`Other`) for codes the standard may add, plus region codes
//! (admdvs) and the resident ID number.

use std::fmt;

/// Why a code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {table} code")]
pub struct CodeError {
    /// The code table, e.g. `insutype`.
    pub table: &'static str,
}

/// A code the standard may add later: 1 to 16 ASCII letters or digits.
fn valid_escape(code: &str) -> bool {
    (1..=16).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

macro_rules! code_table {
    (
        $(#[$meta:meta])*
        $name:ident, $table:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code not (yet) in this table, kept verbatim.
            Other(Box<str>),
        }

        impl $name {
            /// The national code table's name.
            pub const TABLE: &'static str = $table;
            /// Every known code.
            pub const KNOWN: &'static [&'static str] = &[$($code),*];

            /// Parses a national code. Unknown but well-formed codes become `Other`.
            pub fn parse(code: &str) -> Result<Self, CodeError> {
                match code {
                    $( $code => Ok(Self::$variant), )*
                    other if valid_escape(other) => Ok(Self::Other(other.into())),
                    _ => Err(CodeError { table: $table }),
                }
            }

            /// The national code.
            pub fn code(&self) -> &str {
                match self {
                    $( Self::$variant => $code, )*
                    Self::Other(code) => code,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

code_table! {
    /// Insurance type (险种, `insutype`).
    Insutype, "insutype" {
        /// 310 employee basic medical insurance.
        EmployeeBasic = "310",
        /// 320 civil-servant medical subsidy.
        CivilServant = "320",
        /// 330 employee large-amount supplement.
        EmployeeLargeAmount = "330",
        /// 340 retired cadre.
        RetiredCadre = "340",
        /// 390 resident basic medical insurance.
        ResidentBasic = "390",
        /// 392 resident critical-illness insurance.
        ResidentCritical = "392",
    }
}

code_table! {
    /// Kind of care (医疗类别, `med_type`).
    MedType, "med_type" {
        /// 11 ordinary outpatient.
        Outpatient = "11",
        /// 12 outpatient registration.
        OutpatientRegistration = "12",
        /// 13 emergency.
        Emergency = "13",
        /// 14 chronic or special-disease outpatient.
        ChronicOutpatient = "14",
        /// 21 ordinary inpatient.
        Inpatient = "21",
        /// 41 designated-pharmacy purchase.
        Pharmacy = "41",
    }
}

code_table! {
    /// A person's certificate type (`psn_cert_type`).
    PsnCertType, "psn_cert_type" {
        /// 01 resident ID card: the number is an [`IdNumber`].
        ResidentId = "01",
    }
}

code_table! {
    /// The credential a visit is identified by (`mdtrt_cert_type`).
    MdtrtCertType, "mdtrt_cert_type" {
        /// 01 insurance e-voucher (QR code).
        EVoucher = "01",
        /// 02 resident ID card.
        IdCard = "02",
        /// 03 social-security card.
        SocialSecurityCard = "03",
    }
}

code_table! {
    /// Clearing type (`clr_type`).
    ClrType, "clr_type" {
        /// 11 outpatient.
        Outpatient = "11",
        /// 21 inpatient.
        Inpatient = "21",
        /// 41 pharmacy.
        Pharmacy = "41",
    }
}

/// The three provinces this gateway joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Province {
    /// 11xxxx.
    Beijing,
    /// 12xxxx.
    Tianjin,
    /// 13xxxx.
    Hebei,
}

impl Province {
    /// Every province, in code order.
    pub const ALL: [Province; 3] = [Province::Beijing, Province::Tianjin, Province::Hebei];

    /// The province-level admdvs: 110000, 120000, 130000.
    pub fn admdvs(self) -> Admdvs {
        Admdvs(match self {
            Province::Beijing => 110000,
            Province::Tianjin => 120000,
            Province::Hebei => 130000,
        })
    }

    /// Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            Province::Beijing => "北京",
            Province::Tianjin => "天津",
            Province::Hebei => "河北",
        }
    }
}

/// A 6-digit administrative division of an insurance region (医保区划).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Admdvs(u32);

impl Admdvs {
    /// Parses six ASCII digits, the first not zero.
    #[inline]
    pub fn parse(code: &str) -> Result<Admdvs, CodeError> {
        const ERR: CodeError = CodeError { table: "admdvs" };
        let b = code.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) || b[0] == b'0' {
            return Err(ERR);
        }
        Ok(Admdvs(
            b.iter().fold(0, |acc, &d| acc * 10 + u32::from(d - b'0')),
        ))
    }

    /// The numeric value.
    pub fn value(self) -> u32 {
        self.0
    }

    /// The province the code lies in, if it is one of the three.
    pub fn province(self) -> Option<Province> {
        match self.0 / 10_000 {
            11 => Some(Province::Beijing),
            12 => Some(Province::Tianjin),
            13 => Some(Province::Hebei),
            _ => None,
        }
    }

    /// Whether `self` lies within `prefix` by the code's own hierarchy:
    /// 130600 lies within 130000, 130602 within 130600 and 130000.
    pub fn within(self, prefix: Admdvs) -> bool {
        let p = prefix.0;
        if p.is_multiple_of(10_000) {
            self.0 / 10_000 == p / 10_000
        } else if p.is_multiple_of(100) {
            self.0 / 100 == p / 100
        } else {
            self.0 == p
        }
    }

    /// Digits that matter for the hierarchy: 2 for a province, 4 for a city, 6 for a county.
    pub fn specificity(self) -> u8 {
        if self.0.is_multiple_of(10_000) {
            2
        } else if self.0.is_multiple_of(100) {
            4
        } else {
            6
        }
    }
}

impl fmt::Display for Admdvs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl fmt::Debug for Admdvs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

/// An 18-character resident ID number (居民身份证号), check character verified.
///
/// Its `Debug` and `Display` never show the number: it is personal data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber(Box<str>);

/// ISO 7064 MOD 11-2 weights of the first 17 digits.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each remainder.
const ID_CHECK: [u8; 11] = *b"10X98765432";

impl IdNumber {
    /// Parses and verifies an ID number. A lower-case `x` is accepted and stored upper-case.
    pub fn parse(text: &str) -> Result<IdNumber, CodeError> {
        const ERR: CodeError = CodeError {
            table: "resident ID number",
        };
        let b = text.as_bytes();
        if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
            return Err(ERR);
        }
        let check = Self::check_character(&b[..17]).ok_or(ERR)?;
        if b[17].to_ascii_uppercase() != check {
            return Err(ERR);
        }
        let mut stored = text.to_owned();
        stored.make_ascii_uppercase();
        Ok(IdNumber(stored.into()))
    }

    /// The check character for 17 leading digits.
    pub fn check_character(first17: &[u8]) -> Option<u8> {
        if first17.len() != 17 || !first17.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let sum: u32 = first17
            .iter()
            .zip(ID_WEIGHTS)
            .map(|(&d, w)| u32::from(d - b'0') * w)
            .sum();
        Some(ID_CHECK[(sum % 11) as usize])
    }

    /// The number itself. Handle with care: personal data.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The birth date encoded in positions 7–14.
    pub fn birth_date(&self) -> Option<crate::time::Date> {
        crate::time::Date::parse_compact(&self.0[6..14]).ok()
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdNumber(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_number_check_character_is_verified() {
        // The published GB 11643 example number.
        assert!(IdNumber::parse("11010519491231002X").is_ok());
        assert!(IdNumber::parse("11010519491231002x").is_ok());
        assert!(IdNumber::parse("110105194912310021").is_err());
        assert!(IdNumber::parse("11010519491231002").is_err());
        assert_eq!(
            IdNumber::parse("11010519491231002X")
                .ok()
                .and_then(|n| n.birth_date())
                .map(|d| d.to_string()),
            Some("1949-12-31".into())
        );
        assert_eq!(
            format!("{:?}", IdNumber::parse("11010519491231002X")),
            "Ok(IdNumber(***))"
        );
    }

    #[test]
    fn codes_keep_unknown_values() {
        assert_eq!(Insutype::parse("310"), Ok(Insutype::EmployeeBasic));
        assert_eq!(
            Insutype::parse("399").map(|c| c.code().to_owned()),
            Ok("399".into())
        );
        assert!(Insutype::parse("3 10").is_err());
        assert!(MedType::parse("").is_err());
    }

    #[test]
    fn admdvs_hierarchy() {
        let baoding = Admdvs::parse("130600").map_err(|e| e.to_string());
        let hebei = Admdvs::parse("130000").map_err(|e| e.to_string());
        assert_eq!(
            baoding.clone().map(|b| b.province()),
            Ok(Some(Province::Hebei))
        );
        assert!(matches!((baoding, hebei), (Ok(b), Ok(h)) if b.within(h) && !h.within(b)));
        assert!(Admdvs::parse("013000").is_err());
        assert!(Admdvs::parse("13000").is_err());
    }
}
