//! The arithmetic of clearing one day: what each insured region owes each
//! treatment region (the funds' share and the personal-account share of its
//! people treated there), the bilateral nets, and one net position per region.
//!
//! Figures come from the gateway's journal (settlements positive, cancels and
//! reversals negative: a cancel of an earlier day's settlement is an
//! adjustment of the day it happens). Discrepancies with the regions'
//! statements are reported beside the clearing, not folded into it: officers
//! settle them by adjustment.
//!
//! Positions are differences of the same integer sums, so they add up to
//! zero to the fen by construction; [`clear`] checks it all the same.

use crate::reconcile::{Owed, Regions};
use contracts::{Admdvs, Money};
use std::collections::BTreeMap;

/// What an insured region owes a treatment region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The paying (insured) region.
    pub insured: Admdvs,
    /// The receiving (treatment) region.
    pub treatment: Admdvs,
    /// The sums.
    pub owed: Owed,
    /// Funds plus personal account.
    pub total: Money,
}

/// Two regions' debts netted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bilateral {
    /// The first region (lower code).
    pub a: Admdvs,
    /// The second region.
    pub b: Admdvs,
    /// What `b` owes `a` minus what `a` owes `b`: positive when `a` receives.
    pub net: Money,
}

/// One region's single pay-or-receive figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The region.
    pub admdvs: Admdvs,
    /// Its name.
    pub name: String,
    /// What others owe it.
    pub receives: Money,
    /// What it owes others.
    pub pays: Money,
    /// `receives − pays`: positive when it receives.
    pub net: Money,
}

/// The day's clearing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clearing {
    /// Per ordered pair, insured → treatment (pairs with nothing are left out).
    pub pairs: Vec<Pair>,
    /// Per unordered pair of regions.
    pub bilateral: Vec<Bilateral>,
    /// Per configured region, in configuration order.
    pub positions: Vec<Position>,
}

/// Why clearing failed: a sum beyond the range of money, or positions that
/// do not cancel out (a bug, never a rounding: everything is integer fen).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClearingError {
    /// A sum overflowed.
    #[error("a clearing sum is out of range")]
    Overflow,
    /// The positions do not sum to zero.
    #[error("net positions sum to {0} instead of zero")]
    Unbalanced(String),
}

/// Clears a day from what each insured region (index) owes each treatment region.
pub fn clear(
    regions: &Regions,
    owed: &BTreeMap<(usize, usize), Owed>,
) -> Result<Clearing, ClearingError> {
    let add = |a: Money, b: Money| a.checked_add(b).ok_or(ClearingError::Overflow);
    let n = regions.list.len();
    let mut receives = vec![Money::default(); n];
    let mut pays = vec![Money::default(); n];
    let mut matrix = vec![vec![Money::default(); n]; n];
    let mut pairs = Vec::new();
    for (&(insured, treatment), sums) in owed {
        if insured >= n || treatment >= n || insured == treatment {
            continue;
        }
        let total = sums.total().ok_or(ClearingError::Overflow)?;
        pays[insured] = add(pays[insured], total)?;
        receives[treatment] = add(receives[treatment], total)?;
        matrix[insured][treatment] = add(matrix[insured][treatment], total)?;
        pairs.push(Pair {
            insured: regions.list[insured].0,
            treatment: regions.list[treatment].0,
            owed: *sums,
            total,
        });
    }
    let mut bilateral = Vec::new();
    for (a, b) in (0..n).flat_map(|a| (a + 1..n).map(move |b| (a, b))) {
        {
            let net = matrix[b][a]
                .checked_sub(matrix[a][b])
                .ok_or(ClearingError::Overflow)?;
            let (first, second) = if regions.list[a].0 <= regions.list[b].0 {
                (a, b)
            } else {
                (b, a)
            };
            let net = if first == a { net } else { net.negated() };
            bilateral.push(Bilateral {
                a: regions.list[first].0,
                b: regions.list[second].0,
                net,
            });
        }
    }
    let mut positions = Vec::with_capacity(n);
    let mut sum = Money::default();
    for (i, (admdvs, name)) in regions.list.iter().enumerate() {
        let net = receives[i]
            .checked_sub(pays[i])
            .ok_or(ClearingError::Overflow)?;
        sum = add(sum, net)?;
        positions.push(Position {
            admdvs: *admdvs,
            name: name.clone(),
            receives: receives[i],
            pays: pays[i],
            net,
        });
    }
    if sum != Money::default() {
        return Err(ClearingError::Unbalanced(sum.to_yuan_string()));
    }
    Ok(Clearing {
        pairs,
        bilateral,
        positions,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn regions() -> Regions {
        Regions::new(
            [("110000", "北京"), ("120000", "天津"), ("130000", "河北")]
                .into_iter()
                .map(|(c, n)| (Admdvs::parse(c).unwrap(), n.to_owned()))
                .collect(),
        )
    }

    fn owed(fund: i64, acct: i64) -> Owed {
        Owed {
            count: 1,
            fund_pay_sumamt: Money::from_fen(fund).unwrap(),
            acct_pay: Money::from_fen(acct).unwrap(),
        }
    }

    #[test]
    fn a_worked_example() {
        // Hebei owes Beijing 1,000.00 + 50.00; Beijing owes Hebei 300.00;
        // Tianjin owes Beijing 200.01.
        let mut debts = BTreeMap::new();
        debts.insert((2, 0), owed(100_000, 5_000));
        debts.insert((0, 2), owed(30_000, 0));
        debts.insert((1, 0), owed(20_001, 0));
        let c = clear(&regions(), &debts).unwrap();
        let net: Vec<i64> = c.positions.iter().map(|p| p.net.fen()).collect();
        assert_eq!(
            net,
            vec![105_000 + 20_001 - 30_000, -20_001, 30_000 - 105_000]
        );
        let bj_he = c
            .bilateral
            .iter()
            .find(|b| b.a.to_string() == "110000" && b.b.to_string() == "130000")
            .unwrap();
        assert_eq!(bj_he.net.fen(), 75_000);
        assert_eq!(c.pairs.len(), 3);
    }

    proptest! {
        #[test]
        fn positions_always_sum_to_zero_and_match_independent_arithmetic(
            cells in proptest::collection::vec((0usize..3, 0usize..3, -10_000_000i64..10_000_000, 0i64..1_000_000), 0..40)
        ) {
            let mut debts: BTreeMap<(usize, usize), Owed> = BTreeMap::new();
            let mut expected = [0i64; 3];
            for (i, t, fund, acct) in cells {
                let e = debts.entry((i, t)).or_default();
                e.fund_pay_sumamt = e.fund_pay_sumamt.checked_add(Money::from_fen(fund).unwrap()).unwrap();
                e.acct_pay = e.acct_pay.checked_add(Money::from_fen(acct).unwrap()).unwrap();
                if i != t {
                    expected[t] += fund + acct;
                    expected[i] -= fund + acct;
                }
            }
            let c = clear(&regions(), &debts).unwrap();
            let net: Vec<i64> = c.positions.iter().map(|p| p.net.fen()).collect();
            prop_assert_eq!(net.iter().sum::<i64>(), 0);
            prop_assert_eq!(net, expected.to_vec());
        }
    }
}
