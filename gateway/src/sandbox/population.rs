//! The sandbox platforms' population: every valid 18-character resident ID
//! number is a person insured in whichever Beijing–Tianjin–Hebei region is
//! asked, and everything about that person is derived from the number, so a
//! tester can pick a person of the kind they need by writing the number.
//!
//! Positions are counted from 1, as on the card: `AAAAAA YYYYMMDD SSG C`.
//!
//! | position | meaning on a real card | what the sandbox derives from it |
//! |---|---|---|
//! | 1–6 | address code | 6th digit: personal-account tier (employees), see below |
//! | 7–14 | birth date | age on the day asked; retirement (employees) |
//! | 15 | sequence | scheme and civil-servant flag: 0–3 employee (310); 4–5 employee and civil servant; 6–9 resident (390) |
//! | 16 | sequence | chronic-disease registrations: 0–3 none; 4 anti-rejection after transplant; 5 hypertension; 6 diabetes; 7 hypertension and diabetes; 8 outpatient cancer treatment; 9 uraemia dialysis |
//! | 17 | sequence, sex | odd: man; even: woman (as on real cards) |
//! | 18 | check character | ISO 7064 MOD 11-2; a wrong one is "person not found" |
//!
//! **Retired** (employees only): a man from his 60th birthday, a woman from
//! her 55th (the pre-2025 statutory ages; the gradual raising from 2025 is not
//! modelled). Residents are never "retired".
//!
//! **Personal account** (employees only; residents have none and show 0.00):
//! the opening balance is the tier of the 6th digit plus, for tiers 1–9, the
//! three sequence digits (positions 15–17) read as fen (0.00–9.99 yuan):
//!
//! | 6th digit | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |
//! |---|---|---|---|---|---|---|---|---|---|---|
//! | tier, yuan | 0.00 (empty, no fen added) | 20.00 | 100.00 | 300.00 | 800.00 | 1,500.00 | 2,500.00 | 4,000.00 | 6,000.00 | 10,000.00 |
//!
//! E.g. `11010519491231002X`: 6th digit 5, sequence `002` → 1,500.02 yuan.
//!
//! **psn_no**: the insured region's six digits followed by 14 digits of a
//! digest (FNV-1a over the number and the region, then the SplitMix64
//! finaliser). It is stable and does not show the ID number to a reader of a
//! log; it is no cryptographic protection (anyone who tries every birth date
//! and sequence can find a number that matches), and there is no way back
//! from a psn_no to the number here: a server that must find the person by
//! psn_no remembers the pair when it answers a 1101 lookup.
//!
//! **Name**: a surname from 60 common surnames and a one- or two-character
//! given name from 30 characters for the person's sex, chosen by a second
//! digest of the number alone (the same person has the same name in every
//! region). Invented, but personal-looking: it is kept in a [`Secret`].
//!
//! A number whose birth date is not a real date, or lies after the day asked,
//! is "not found"; so is a region outside the three provinces.

use contracts::model::person::{BaseInfo, InsuInfo, PersonLookupOutput};
use contracts::model::settlement::SetlInfo;
use contracts::{Admdvs, Age, Date, IdNumber, Insutype, Money, PsnCertType, Region, Secret};
use std::fmt;

/// The insurance scheme a person belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Employee basic medical insurance (职工基本医疗保险, insutype 310).
    Employee,
    /// Resident basic medical insurance (城乡居民基本医疗保险, insutype 390).
    Resident,
}

impl Scheme {
    /// The scheme's insurance type: 310 or 390.
    pub fn insutype(self) -> Insutype {
        match self {
            Scheme::Employee => Insutype::EmployeeBasic,
            Scheme::Resident => Insutype::ResidentBasic,
        }
    }
}

/// Sex, from the 17th digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sex {
    /// Odd 17th digit.
    Male,
    /// Even 17th digit.
    Female,
}

impl Sex {
    /// The national code (`gend`, GB/T 2261.1): 1 man, 2 woman.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "1",
            Sex::Female => "2",
        }
    }
}

/// A chronic or special disease the person is registered for (门诊慢特病登记),
/// the five settled across provinces nationally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChronicDisease {
    /// Hypertension (高血压).
    Hypertension,
    /// Diabetes (糖尿病).
    Diabetes,
    /// Outpatient cancer treatment (恶性肿瘤门诊治疗).
    Cancer,
    /// Uraemia dialysis (尿毒症透析).
    Dialysis,
    /// Anti-rejection therapy after organ transplant (器官移植术后抗排异治疗).
    AntiRejection,
}

impl ChronicDisease {
    /// Chinese name.
    pub fn name_zh(self) -> &'static str {
        match self {
            ChronicDisease::Hypertension => "高血压",
            ChronicDisease::Diabetes => "糖尿病",
            ChronicDisease::Cancer => "恶性肿瘤门诊治疗",
            ChronicDisease::Dialysis => "尿毒症透析",
            ChronicDisease::AntiRejection => "器官移植术后抗排异治疗",
        }
    }

    /// Whether the disease is a "major" one (cancer, dialysis, anti-rejection),
    /// for which policies set a higher chronic-outpatient cap.
    pub fn is_major(self) -> bool {
        matches!(
            self,
            ChronicDisease::Cancer | ChronicDisease::Dialysis | ChronicDisease::AntiRejection
        )
    }
}

/// A person of the sandbox population, as seen on one day.
///
/// `Debug` shows only the psn_no, region and kind: the number, name, birth
/// date and registrations (health data) stay out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Person {
    /// The ID number (masked in `Debug`).
    pub id: IdNumber,
    /// Person number (人员编号): region + digest, see the module docs.
    pub psn_no: String,
    /// Invented name (personal-looking, so kept secret).
    pub name: Secret,
    /// Sex.
    pub sex: Sex,
    /// Birth date.
    pub birth_date: Date,
    /// Age in full years on the day the person was looked up.
    pub age: u32,
    /// The insured region asked for.
    pub insured: Admdvs,
    /// Scheme.
    pub scheme: Scheme,
    /// The scheme's insurance type: 310 employees, 390 residents.
    pub insutype: Insutype,
    /// Retired on the day the person was looked up (employees only).
    pub retired: bool,
    /// Civil servant (employees only).
    pub civil_servant: bool,
    /// Opening personal-account balance (0.00 for residents, who have none).
    pub account_balance: Money,
    /// Chronic-disease registrations, in the order of [`ChronicDisease`].
    pub chronic: Vec<ChronicDisease>,
}

/// The person with this ID number, insured in `insured`, as seen on `on`.
///
/// `None` ("person not found") when the number is not a valid ID number
/// (length, digits, check character), its birth date is not a real date or
/// lies after `on`, or `insured` is outside Beijing, Tianjin and Hebei.
pub fn person(id: &str, insured: Admdvs, on: Date) -> Option<Person> {
    let id = IdNumber::parse(id).ok()?;
    insured.province()?;
    let birth_date = id.birth_date()?;
    let age = age_on(birth_date, on)?;
    let digits: Vec<u32> = id
        .expose()
        .bytes()
        .take(17)
        .map(|b| u32::from(b.wrapping_sub(b'0')))
        .collect();
    let digit = |position: usize| digits.get(position - 1).copied().unwrap_or(0);
    let sex = if digit(17) % 2 == 1 {
        Sex::Male
    } else {
        Sex::Female
    };
    let (scheme, civil_servant) = match digit(15) {
        0..=3 => (Scheme::Employee, false),
        4 | 5 => (Scheme::Employee, true),
        _ => (Scheme::Resident, false),
    };
    let retired = scheme == Scheme::Employee && age >= retirement_age(sex);
    let account_balance = match scheme {
        Scheme::Resident => Money::ZERO,
        Scheme::Employee => {
            let sequence = digit(15) * 100 + digit(16) * 10 + digit(17);
            let fen = ACCOUNT_TIERS_FEN[(digit(6) % 10) as usize];
            let fen = if fen == 0 {
                0
            } else {
                fen + i64::from(sequence)
            };
            Money::from_fen(fen).unwrap_or(Money::ZERO)
        }
    };
    let chronic = match digit(16) {
        4 => vec![ChronicDisease::AntiRejection],
        5 => vec![ChronicDisease::Hypertension],
        6 => vec![ChronicDisease::Diabetes],
        7 => vec![ChronicDisease::Hypertension, ChronicDisease::Diabetes],
        8 => vec![ChronicDisease::Cancer],
        9 => vec![ChronicDisease::Dialysis],
        _ => Vec::new(),
    };
    let psn_no = psn_no(&id, insured);
    let name = Secret::new(invented_name(&id, sex));
    Some(Person {
        id,
        psn_no,
        name,
        sex,
        birth_date,
        age,
        insured,
        scheme,
        insutype: scheme.insutype(),
        retired,
        civil_servant,
        account_balance,
        chronic,
    })
}

/// Opening account balance tiers by the 6th digit, in fen.
const ACCOUNT_TIERS_FEN: [i64; 10] = [
    0, 2_000, 10_000, 30_000, 80_000, 150_000, 250_000, 400_000, 600_000, 1_000_000,
];

/// Age at which an employee of this sex counts as retired.
pub fn retirement_age(sex: Sex) -> u32 {
    match sex {
        Sex::Male => 60,
        Sex::Female => 55,
    }
}

/// Year, month and day of a date (without depending on chrono here).
pub(crate) fn ymd(date: Date) -> (i32, u32, u32) {
    let compact = date.to_compact();
    let number = |range: std::ops::Range<usize>| {
        compact
            .get(range)
            .and_then(|text| text.parse::<u32>().ok())
            .unwrap_or(0)
    };
    (number(0..4) as i32, number(4..6), number(6..8))
}

/// Age in full years on `on` of a person born on `birth`; `None` if `on` is before `birth`.
pub fn age_on(birth: Date, on: Date) -> Option<u32> {
    if on < birth {
        return None;
    }
    let (by, bm, bd) = ymd(birth);
    let (oy, om, od) = ymd(on);
    let mut years = oy - by;
    if (om, od) < (bm, bd) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// Completes 17 leading digits into a valid 18-character ID number (for
/// testers and tests). `None` unless `first17` is 17 ASCII digits.
pub fn with_check_character(first17: &str) -> Option<String> {
    let check = IdNumber::check_character(first17.as_bytes())?;
    let mut number = first17.to_owned();
    number.push(char::from(check));
    Some(number)
}

/// FNV-1a, 64 bits.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xFF;
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// The SplitMix64 finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The person number: the region's six digits and 14 digest digits.
fn psn_no(id: &IdNumber, insured: Admdvs) -> String {
    let region = insured.to_string();
    let digest = mix(fnv1a(&[
        b"psn_no",
        id.expose().as_bytes(),
        region.as_bytes(),
    ]));
    format!("{region}{:014}", digest % 100_000_000_000_000)
}

const SURNAMES: [&str; 60] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "肖", "田", "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁",
    "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金",
];
const GIVEN_MALE: [&str; 30] = [
    "伟", "强", "磊", "军", "勇", "杰", "涛", "斌", "超", "明", "刚", "平", "辉", "鹏", "华", "飞",
    "鑫", "波", "宇", "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "峰",
];
const GIVEN_FEMALE: [&str; 30] = [
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "英", "玲", "桂", "丹", "萍", "红", "玉",
    "兰", "燕", "婷", "雪", "琳", "洁", "梅", "莉", "倩", "颖", "慧", "佳", "欣", "悦",
];

/// The invented name: surname, then one or two given-name characters.
fn invented_name(id: &IdNumber, sex: Sex) -> String {
    let mut digest = mix(fnv1a(&[b"name", id.expose().as_bytes()]));
    let mut take = |modulus: u64| {
        let value = digest % modulus;
        digest /= modulus;
        value as usize
    };
    let given = match sex {
        Sex::Male => &GIVEN_MALE,
        Sex::Female => &GIVEN_FEMALE,
    };
    let mut name = String::new();
    name.push_str(SURNAMES[take(SURNAMES.len() as u64)]);
    name.push_str(given[take(given.len() as u64)]);
    if take(2) == 1 {
        name.push_str(given[take(given.len() as u64)]);
    }
    name
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("psn_no", &self.psn_no)
            .field("insured", &self.insured)
            .field("scheme", &self.scheme)
            .field("retired", &self.retired)
            .field("civil_servant", &self.civil_servant)
            .finish_non_exhaustive()
    }
}

impl Person {
    /// Age in full years on `date` (0 before the birth date).
    pub fn age_on(&self, date: Date) -> u32 {
        age_on(self.birth_date, date).unwrap_or(0)
    }

    /// Whether the person counts as retired on `date` (employees only).
    pub fn retired_on(&self, date: Date) -> bool {
        self.scheme == Scheme::Employee && self.age_on(date) >= retirement_age(self.sex)
    }

    /// Whether the person is registered for any chronic or special disease.
    pub fn has_chronic_registration(&self) -> bool {
        !self.chronic.is_empty()
    }

    /// Whether one of the registrations is a major disease ([`ChronicDisease::is_major`]).
    pub fn has_major_chronic(&self) -> bool {
        self.chronic.iter().any(|d| d.is_major())
    }

    /// Person type (人员类别) as the sandbox sends it: 1101 employee in
    /// service, 1102 retired employee, 1401 resident (codes remembered, not
    /// confirmed against the national table).
    pub fn psn_type(&self) -> &'static str {
        match (self.scheme, self.retired) {
            (Scheme::Employee, false) => "1101",
            (Scheme::Employee, true) => "1102",
            (Scheme::Resident, _) => "1401",
        }
    }

    /// Civil-servant flag (公务员标志): "1" or "0".
    pub fn cvlserv_flag(&self) -> &'static str {
        if self.civil_servant {
            "1"
        } else {
            "0"
        }
    }

    /// The age as the interface carries it (one decimal; full years here).
    pub fn age_field(&self) -> Option<Age> {
        Age::from_scaled(i64::from(self.age) * 10)
    }

    /// Fills the person's fields of a settlement answer: psn_no, psn_name,
    /// psn_cert_type, certno, gend, naty, brdy, age, insutype, psn_type,
    /// cvlserv_flag. Amounts are the policy engine's business.
    pub fn fill_setlinfo(&self, info: &mut SetlInfo) {
        info.psn_no = Some(self.psn_no.clone());
        info.psn_name = Some(self.name.clone());
        info.psn_cert_type = Some(PsnCertType::ResidentId);
        info.certno = Some(Secret::new(self.id.expose()));
        info.gend = Some(self.sex.code().to_owned());
        info.naty = Some("01".to_owned());
        info.brdy = Some(self.birth_date);
        info.age = self.age_field();
        info.insutype = Some(self.insutype.clone());
        info.psn_type = Some(self.psn_type().to_owned());
        info.cvlserv_flag = Some(self.cvlserv_flag().to_owned());
    }

    /// The 1101 answer for this person, showing `balance` as the account
    /// balance (the opening balance less what the sandbox has spent).
    pub fn lookup_output(&self, balance: Money) -> PersonLookupOutput {
        let base = BaseInfo {
            psn_no: Some(self.psn_no.clone()),
            psn_cert_type: Some(PsnCertType::ResidentId),
            certno: Some(Secret::new(self.id.expose())),
            psn_name: Some(self.name.clone()),
            gend: Some(self.sex.code().to_owned()),
            naty: Some("01".to_owned()),
            brdy: Some(self.birth_date),
            age: self.age_field(),
            ..BaseInfo::default()
        };
        let insurance = InsuInfo {
            balc: Some(balance),
            insutype: Some(self.insutype.clone()),
            psn_type: Some(self.psn_type().to_owned()),
            psn_insu_stas: Some("1".to_owned()),
            cvlserv_flag: Some(self.cvlserv_flag().to_owned()),
            insuplc_admdvs: Some(Region::new(self.insured)),
            ..InsuInfo::default()
        };
        PersonLookupOutput {
            baseinfo: Some(base),
            insuinfo: vec![insurance],
            ..PersonLookupOutput::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        Date::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn region(code: &str) -> Admdvs {
        Admdvs::parse(code).unwrap_or_else(|e| panic!("{code}: {e}"))
    }

    #[test]
    fn the_published_example_number_is_a_retired_woman_employee() {
        // 110105 19491231 002 X: 6th digit 5, sequence 0/0/2.
        let p = person("11010519491231002X", region("110000"), date("2026-11-25"));
        let p = p.unwrap_or_else(|| panic!("valid number"));
        assert_eq!(p.scheme, Scheme::Employee);
        assert!(!p.civil_servant);
        assert_eq!(p.sex, Sex::Female);
        assert_eq!(p.age, 76);
        assert!(p.retired);
        assert_eq!(p.account_balance.to_string(), "1500.02");
        assert!(p.chronic.is_empty());
        assert_eq!(p.psn_no.len(), 20);
        assert!(p.psn_no.starts_with("110000"));
        assert!(!p.psn_no.contains("19491231"));
        assert_eq!(p.psn_type(), "1102");
    }

    #[test]
    fn a_wrong_check_character_is_not_found() {
        assert!(person("110105194912310021", region("110000"), date("2026-01-01")).is_none());
        assert!(person("11010519491231002", region("110000"), date("2026-01-01")).is_none());
        assert!(person("", region("110000"), date("2026-01-01")).is_none());
    }

    #[test]
    fn impossible_births_and_foreign_regions_are_not_found() {
        let feb30 = with_check_character("13060219800230001").unwrap_or_default();
        assert!(person(&feb30, region("130600"), date("2026-01-01")).is_none());
        let future = with_check_character("13060220300101001").unwrap_or_default();
        assert!(person(&future, region("130600"), date("2026-01-01")).is_none());
        assert!(person("11010519491231002X", region("310000"), date("2026-01-01")).is_none());
    }

    #[test]
    fn the_population_is_deterministic() {
        let on = date("2026-06-30");
        for first17 in [
            "11010519800101001",
            "12010119900615682",
            "13060219551010777",
        ] {
            let id = with_check_character(first17).unwrap_or_default();
            let a = person(&id, region("130600"), on);
            let b = person(&id, region("130600"), on);
            assert!(a.is_some());
            assert_eq!(a, b);
            let (a, b) = (a.unwrap_or_else(|| panic!()), b.unwrap_or_else(|| panic!()));
            assert_eq!(a.name.expose(), b.name.expose());
            // Same name in another region, another psn_no.
            let c = person(&id, region("110000"), on).unwrap_or_else(|| panic!());
            assert_eq!(a.name.expose(), c.name.expose());
            assert_ne!(a.psn_no, c.psn_no);
        }
    }

    #[test]
    fn the_digits_select_the_kind() {
        let on = date("2026-06-30");
        // 15th 6 → resident; 16th 9 → dialysis; 17th 3 → man.
        let id = with_check_character("13010219800101693").unwrap_or_default();
        let p = person(&id, region("130100"), on).unwrap_or_else(|| panic!());
        assert_eq!(p.scheme, Scheme::Resident);
        assert_eq!(p.account_balance, Money::ZERO);
        assert_eq!(p.chronic, vec![ChronicDisease::Dialysis]);
        assert!(p.has_major_chronic());
        assert_eq!(p.sex, Sex::Male);
        assert!(!p.retired);
        // 15th 4 → civil servant; 16th 7 → hypertension and diabetes; 6th 0 → empty account.
        let id = with_check_character("12010019700101472").unwrap_or_default();
        let p = person(&id, region("120000"), on).unwrap_or_else(|| panic!());
        assert!(p.civil_servant);
        assert_eq!(
            p.chronic,
            vec![ChronicDisease::Hypertension, ChronicDisease::Diabetes]
        );
        assert_eq!(p.account_balance, Money::ZERO);
        assert_eq!(p.sex, Sex::Female);
        // A woman born 1970-01-01 is 56 on 2026-06-30: retired.
        assert!(p.retired);
        // A man of the same age is not.
        let id = with_check_character("12010019700101471").unwrap_or_default();
        let p = person(&id, region("120000"), on).unwrap_or_else(|| panic!());
        assert!(!p.retired);
        assert!(p.retired_on(date("2030-01-01")));
    }

    #[test]
    fn debug_keeps_personal_data_out() {
        let id = with_check_character("13010219800101091").unwrap_or_default();
        let p = person(&id, region("130100"), date("2026-06-30")).unwrap_or_else(|| panic!());
        let shown = format!("{p:?}");
        assert!(shown.contains(&p.psn_no), "{shown}");
        for secret in [&id[..], p.name.expose(), "1980", "Dialysis", "Hypertension"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn age_counts_full_years() {
        let birth = date("1980-03-15");
        assert_eq!(age_on(birth, date("2026-03-14")), Some(45));
        assert_eq!(age_on(birth, date("2026-03-15")), Some(46));
        assert_eq!(age_on(birth, date("1980-03-14")), None);
        let leap = date("2000-02-29");
        assert_eq!(age_on(leap, date("2026-02-28")), Some(25));
        assert_eq!(age_on(leap, date("2026-03-01")), Some(26));
    }
}
