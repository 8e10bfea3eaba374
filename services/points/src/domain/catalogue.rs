//! The rule catalogue as shipped (TOML), and the checks every rule must pass before it is loaded.

use std::collections::{BTreeMap, HashSet};

use jiaxin_proto::points::{Category, RuleKind, Severity};
use serde::Deserialize;

/// The default catalogue: 5 categories, 48 rules.
pub const DEFAULT_CATALOGUE: &str = include_str!("../../catalogue/default.toml");

/// Who may record items, as named in the catalogue.
pub const RECORDER_NAMES: &[&str] =
    &["grid_worker", "property_manager", "volunteer", "village_cadre", "council_member", "resident"];

/// The longest any entry may count: five years.
pub const MAX_COUNTS_DAYS: i64 = 5 * 365 + 1;

/// Words that must never appear in a deduction: lawful petitioning is not misconduct.
const PROTECTED_ACTS: &[&str] = &["信访", "上访", "petition"];

#[derive(Debug, Deserialize)]
struct File {
    defaults: Defaults,
    severity: BTreeMap<String, Window>,
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
struct Defaults {
    adopted_by: String,
    adopted_on: String,
    basis: String,
    bonus_counts_days: i64,
    large_bonus_points: i64,
}

#[derive(Debug, Deserialize, Clone, Copy)]
struct Window {
    disclosure_days: i64,
    counts_days: i64,
}

#[derive(Debug, Deserialize)]
struct RawRule {
    code: String,
    category: String,
    name_zh: String,
    name_en: String,
    kind: String,
    points: [i64; 2],
    yearly_cap: i64,
    recorders: Vec<String>,
    evidence_required: bool,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    review_required: Option<bool>,
    article: String,
    #[serde(default)]
    adopted_by: Option<String>,
    #[serde(default)]
    adopted_on: Option<String>,
    #[serde(default)]
    basis: Option<String>,
}

/// A rule ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleDef {
    pub code: String,
    pub category: Category,
    pub name_zh: String,
    pub name_en: String,
    pub kind: RuleKind,
    pub points_min: i64,
    pub points_max: i64,
    pub yearly_cap: i64,
    pub recorders: Vec<String>,
    pub evidence_required: bool,
    pub review_required: bool,
    pub severity: Severity,
    pub disclosure_days: i64,
    pub counts_days: i64,
    pub article: String,
    pub adopted_by: String,
    pub adopted_on: String,
    pub basis: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("rule {code}: {problem}")]
pub struct CatalogueError {
    pub code: String,
    pub problem: String,
}

fn category(name: &str) -> Option<Category> {
    Some(match name {
        "village_affairs" => Category::VillageAffairs,
        "collective_resources" => Category::CollectiveResources,
        "civilised_customs" => Category::CivilisedCustoms,
        "environment" => Category::Environment,
        "public_order" => Category::PublicOrder,
        _ => return None,
    })
}

fn severity(name: &str) -> Option<Severity> {
    Some(match name {
        "minor" => Severity::Minor,
        "general" => Severity::General,
        "serious" => Severity::Serious,
        _ => return None,
    })
}

/// Parses and checks a catalogue; every problem is named with its rule.
pub fn parse(text: &str) -> Result<Vec<RuleDef>, CatalogueError> {
    let file: File = toml::from_str(text)
        .map_err(|e| CatalogueError { code: "-".into(), problem: format!("not valid TOML: {e}") })?;
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(file.rule.len());
    for raw in file.rule {
        let fail = |problem: &str| CatalogueError { code: raw.code.clone(), problem: problem.to_owned() };
        if raw.code.trim().is_empty() || !seen.insert(raw.code.clone()) {
            return Err(fail("code is empty or repeated"));
        }
        let category = category(&raw.category).ok_or_else(|| fail("unknown category"))?;
        let kind = match raw.kind.as_str() {
            "bonus" => RuleKind::Bonus,
            "deduction" => RuleKind::Deduction,
            _ => return Err(fail("kind must be bonus or deduction")),
        };
        let [points_min, points_max] = raw.points;
        if points_min <= 0 || points_max < points_min {
            return Err(fail("points must be a positive range [min, max]"));
        }
        if raw.recorders.is_empty() || raw.recorders.iter().any(|r| !RECORDER_NAMES.contains(&r.as_str())) {
            return Err(fail("recorders must name known roles"));
        }
        if raw.name_zh.trim().is_empty() || raw.name_en.trim().is_empty() || raw.article.trim().is_empty() {
            return Err(fail("names and the village-rule article are required"));
        }
        let self_report = raw.recorders.iter().any(|r| r == "resident");
        let (severity, window) = match (kind, raw.severity.as_deref()) {
            (RuleKind::Deduction, Some(name)) => {
                let severity = severity(name).ok_or_else(|| fail("unknown severity"))?;
                let window = file.severity.get(name).copied().ok_or_else(|| fail("no window for its severity"))?;
                (severity, window)
            }
            (RuleKind::Deduction, None) => return Err(fail("a deduction needs a severity class")),
            (_, Some(_)) => return Err(fail("only deductions have a severity class")),
            _ => (Severity::Unspecified, Window { disclosure_days: 0, counts_days: file.defaults.bonus_counts_days }),
        };
        if kind == RuleKind::Deduction && self_report {
            return Err(fail("deductions cannot be self-reported"));
        }
        if kind == RuleKind::Deduction
            && PROTECTED_ACTS.iter().any(|w| raw.name_zh.contains(w) || raw.name_en.to_lowercase().contains(w))
        {
            return Err(fail("lawful petitioning may never be punished"));
        }
        if window.counts_days < 1 || window.counts_days > MAX_COUNTS_DAYS {
            return Err(fail("an entry may count at most five years"));
        }
        // Every deduction is reviewed; so are large bonuses and self-reportable ones.
        let review_required = kind == RuleKind::Deduction
            || points_max >= file.defaults.large_bonus_points
            || self_report
            || raw.review_required.unwrap_or(false);
        let disclosure_days = if kind == RuleKind::Bonus && review_required {
            7.max(window.disclosure_days)
        } else {
            window.disclosure_days
        };
        rules.push(RuleDef {
            code: raw.code,
            category,
            name_zh: raw.name_zh,
            name_en: raw.name_en,
            kind,
            points_min,
            points_max,
            yearly_cap: raw.yearly_cap.max(0),
            recorders: raw.recorders,
            evidence_required: raw.evidence_required,
            review_required,
            severity,
            disclosure_days,
            counts_days: window.counts_days,
            article: raw.article,
            adopted_by: raw.adopted_by.unwrap_or_else(|| file.defaults.adopted_by.clone()),
            adopted_on: raw.adopted_on.unwrap_or_else(|| file.defaults.adopted_on.clone()),
            basis: raw.basis.unwrap_or_else(|| file.defaults.basis.clone()),
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalogue_has_48_rules_in_5_categories() {
        let rules = parse(DEFAULT_CATALOGUE).unwrap();
        assert_eq!(rules.len(), 48);
        let categories: HashSet<i32> = rules.iter().map(|r| r.category as i32).collect();
        assert_eq!(categories.len(), 5);
        assert!(rules.iter().filter(|r| r.kind == RuleKind::Deduction).all(|r| r.review_required));
        assert!(rules.iter().any(|r| r.severity == Severity::Serious));
        let bonuses = rules.iter().filter(|r| r.kind == RuleKind::Bonus).count();
        assert!(bonuses > 48 / 2, "far more ways to earn than to lose");
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        let base = DEFAULT_CATALOGUE.split("[[rule]]").next().unwrap().to_owned();
        let rule = |body: &str| format!("{base}[[rule]]\n{body}");
        let deduction = |name: &str, extra: &str| {
            format!(
                "code = \"X1\"\ncategory = \"public_order\"\nname_zh = \"{name}\"\nname_en = \"x\"\nkind = \"deduction\"\npoints = [5, 10]\nyearly_cap = 10\nrecorders = [\"village_cadre\"]\nevidence_required = true\narticle = \"第一条\"\n{extra}"
            )
        };
        assert_eq!(parse(&rule(&deduction("赌博", ""))).unwrap_err().problem, "a deduction needs a severity class");
        assert_eq!(
            parse(&rule(&deduction("多次上访", "severity = \"minor\""))).unwrap_err().problem,
            "lawful petitioning may never be punished"
        );
        let reversed = deduction("赌博", "severity = \"minor\"").replace("[5, 10]", "[10, 5]");
        assert_eq!(parse(&rule(&reversed)).unwrap_err().code, "X1");
    }
}
