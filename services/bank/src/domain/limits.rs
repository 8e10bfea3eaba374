//! A product's limit table by tier, stored as `tier=fen` pairs.

use jiaxin_kit::tiers;
use jiaxin_proto::bank::TierLimit;

/// Encodes a limit table, highest tier first; validates tiers and amounts.
pub fn encode(limits: &[TierLimit]) -> Result<String, String> {
    let mut seen = std::collections::HashSet::new();
    let mut ordered: Vec<&TierLimit> = Vec::new();
    for limit in limits {
        if tiers::rank(&limit.tier).is_none() {
            return Err(format!("{}: 不是信用等级 / not a tier", limit.tier));
        }
        if limit.limit_fen < 0 {
            return Err(format!("{}: 额度不能为负 / a limit must not be negative", limit.tier));
        }
        if !seen.insert(limit.tier.as_str()) {
            return Err(format!("{}: 重复 / listed twice", limit.tier));
        }
        ordered.push(limit);
    }
    ordered.sort_by_key(|l| tiers::rank(&l.tier));
    Ok(ordered.iter().map(|l| format!("{}={}", l.tier, l.limit_fen)).collect::<Vec<_>>().join(","))
}

pub fn decode(text: &str) -> Vec<TierLimit> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .filter_map(|(tier, fen)| Some(TierLimit { tier: tier.to_owned(), limit_fen: fen.parse().ok()? }))
        .collect()
}

/// The limit at a tier: 0 for a tier the table does not list.
pub fn at(text: &str, tier: &str) -> i64 {
    decode(text).into_iter().find(|l| l.tier == tier).map(|l| l.limit_fen).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip_in_tier_order_and_unlisted_tiers_get_nothing() {
        let table = encode(&[
            TierLimit { tier: "B".into(), limit_fen: 5_000_000 },
            TierLimit { tier: "AAA".into(), limit_fen: 50_000_000 },
        ])
        .unwrap();
        assert_eq!(table, "AAA=50000000,B=5000000");
        assert_eq!(at(&table, "AAA"), 50_000_000);
        assert_eq!(at(&table, "C"), 0);
        assert!(encode(&[TierLimit { tier: "S".into(), limit_fen: 1 }]).is_err());
    }
}
