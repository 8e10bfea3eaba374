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
        let mut rule = RuleDef {
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
            review_required: raw.review_required.unwrap_or(false),
            severity,
            disclosure_days: window.disclosure_days,
            counts_days: window.counts_days,
            article: raw.article,
            adopted_by: raw.adopted_by.unwrap_or_else(|| file.defaults.adopted_by.clone()),
            adopted_on: raw.adopted_on.unwrap_or_else(|| file.defaults.adopted_on.clone()),
            basis: raw.basis.unwrap_or_else(|| file.defaults.basis.clone()),
        };
        settle(&mut rule, file.defaults.large_bonus_points);
        check(&rule).map_err(|(_, problem)| CatalogueError { code: rule.code.clone(), problem })?;
        rules.push(rule);
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

/// The review and disclosure a rule gets whatever its author asked: every deduction is reviewed,
/// so are large bonuses and self-reportable ones, and a reviewed bonus is disclosed a week first.
pub fn settle(rule: &mut RuleDef, large_bonus_points: i64) {
    let self_report = rule.recorders.iter().any(|r| r == "resident");
    rule.review_required = rule.review_required
        || rule.kind == RuleKind::Deduction
        || rule.points_max >= large_bonus_points
        || self_report;
    if rule.kind == RuleKind::Bonus && rule.review_required {
        rule.disclosure_days = rule.disclosure_days.max(7);
    }
}

/// What every rule must satisfy, shipped or edited: the field at fault and the problem.
pub fn check(rule: &RuleDef) -> Result<(), (&'static str, String)> {
    let code_ok = !rule.code.trim().is_empty()
        && rule.code.len() <= 32
        && rule.code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !code_ok {
        return Err(("code", "1–32 letters, digits, - or _".into()));
    }
    if rule.category == Category::Unspecified {
        return Err(("category", "required".into()));
    }
    if rule.points_min <= 0 || rule.points_max < rule.points_min {
        return Err(("points_min", "points must be a positive range [min, max]".into()));
    }
    if rule.recorders.is_empty() || rule.recorders.iter().any(|r| !RECORDER_NAMES.contains(&r.as_str())) {
        return Err(("recorders", "recorders must name known roles".into()));
    }
    if rule.name_zh.trim().is_empty() || rule.name_en.trim().is_empty() || rule.article.trim().is_empty() {
        return Err(("name_zh", "names and the village-rule article are required".into()));
    }
    if rule.adopted_by.trim().is_empty() || rule.adopted_on.trim().is_empty() || rule.basis.trim().is_empty() {
        return Err(("adopted_by", "provenance (adopting meeting, date, policy basis) is required".into()));
    }
    match rule.kind {
        RuleKind::Deduction if rule.severity == Severity::Unspecified => {
            return Err(("severity", "a deduction needs a severity class".into()));
        }
        RuleKind::Bonus if rule.severity != Severity::Unspecified => {
            return Err(("severity", "only deductions have a severity class".into()));
        }
        RuleKind::Unspecified => return Err(("kind", "kind must be bonus or deduction".into())),
        _ => {}
    }
    if rule.kind == RuleKind::Deduction && rule.recorders.iter().any(|r| r == "resident") {
        return Err(("recorders", "deductions cannot be self-reported".into()));
    }
    if rule.kind == RuleKind::Deduction
        && PROTECTED_ACTS.iter().any(|w| rule.name_zh.contains(w) || rule.name_en.to_lowercase().contains(w))
    {
        return Err(("name_zh", "lawful petitioning may never be punished".into()));
    }
    if rule.counts_days < 1 || rule.counts_days > MAX_COUNTS_DAYS {
        return Err(("counts_days", "an entry may count at most five years".into()));
    }
    if rule.disclosure_days < 0 || rule.disclosure_days > 60 {
        return Err(("disclosure_days", "disclosure lasts 0–60 days".into()));
    }
    Ok(())
}

/// The windows and thresholds of the default catalogue, for rules made through the API.
#[derive(Debug, Clone)]
pub struct Windows {
    pub large_bonus_points: i64,
    pub bonus_counts_days: i64,
    severity: BTreeMap<String, Window>,
}

impl Windows {
    pub fn shipped() -> Result<Self, CatalogueError> {
        let file: File = toml::from_str(DEFAULT_CATALOGUE)
            .map_err(|e| CatalogueError { code: "-".into(), problem: format!("not valid TOML: {e}") })?;
        Ok(Self {
            large_bonus_points: file.defaults.large_bonus_points,
            bonus_counts_days: file.defaults.bonus_counts_days,
            severity: file.severity,
        })
    }

    /// (disclosure days, counting days) by kind and severity.
    pub fn of(&self, kind: RuleKind, severity: Severity) -> (i64, i64) {
        let name = match severity {
            Severity::Minor => "minor",
            Severity::General => "general",
            Severity::Serious => "serious",
            Severity::Unspecified => return (0, self.bonus_counts_days),
        };
        match (kind, self.severity.get(name)) {
            (RuleKind::Deduction, Some(w)) => (w.disclosure_days, w.counts_days),
            _ => (0, self.bonus_counts_days),
        }
    }
}
