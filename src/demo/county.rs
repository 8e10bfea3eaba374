//! A synthetic county, the same for the same seed: villages and grids, households of realistic
//! sizes and ages (so some members are minors), residents with valid-checksum ID numbers, and a
//! year of activity whose mix follows the catalogue (far more bonuses than deductions, a few
//! serious ones). Nothing here touches the system: the story loads it through the public APIs.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// 盱眙县's region code, the first six digits of its residents' ID numbers.
const REGION: &str = "320830";
/// About what one grid worker looks after (the 100–300).
const HOUSEHOLDS_PER_GRID: usize = 200;
const TOWN: &str = "官滩镇";
const VILLAGES: [&str; 10] =
    ["万山村", "仁和村", "新华村", "金源村", "水冲港村", "敬父村", "桂五村", "马坝村", "古桑村", "淮河村"];
const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马",
    "罗",
];
const GIVEN_MALE: [&str; 12] = ["建国", "志强", "国华", "永东", "海军", "俊杰", "子轩", "浩然", "明", "伟", "军", "磊"];
const GIVEN_FEMALE: [&str; 12] =
    ["秀英", "桂兰", "玉梅", "丽娟", "春燕", "雨涵", "欣怡", "梓萱", "芳", "娟", "敏", "静"];

#[derive(Debug, Clone)]
pub struct Member {
    /// As the import file names it: 户主, 配偶, 子女, 父母.
    pub relation: &'static str,
    pub name: String,
    pub id_number: String,
    pub birth: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct Household {
    /// Index into [`County::grids`].
    pub grid: usize,
    pub address: String,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone)]
pub struct Grid {
    /// Index into [`County::villages`].
    pub village: usize,
    pub name: String,
}

/// One thing a household did (or did wrong), to be recorded by its village's cadre.
#[derive(Debug, Clone)]
pub struct Activity {
    pub household: usize,
    pub rule: &'static str,
    pub points: i64,
    pub occurred_on: NaiveDate,
}

#[derive(Debug, Clone)]
pub struct County {
    pub town: &'static str,
    pub villages: Vec<&'static str>,
    pub grids: Vec<Grid>,
    pub households: Vec<Household>,
}

impl County {
    /// `households` spread over ten villages, grids of about 200 households each.
    pub fn generate(households: usize, seed: u64, today: NaiveDate) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let per_village = households.div_ceil(VILLAGES.len()).max(1);
        let grids_per_village = per_village.div_ceil(HOUSEHOLDS_PER_GRID).max(1);
        let grids = (0..VILLAGES.len())
            .flat_map(|v| (0..grids_per_village).map(move |g| Grid { village: v, name: format!("第{}网格", g + 1) }))
            .collect::<Vec<_>>();
        let mut ids = IdNumbers::default();
        let households = (0..households)
            .map(|h| {
                let village = h % VILLAGES.len();
                let grid = village * grids_per_village + (h / VILLAGES.len()) % grids_per_village;
                // The house number is unique in its village: the story finds households by address.
                let number = h / VILLAGES.len() + 1;
                let address = format!("{}{}组{}号", VILLAGES[village], (number / 40) % 12 + 1, number);
                Household { grid, address, members: family(&mut rng, &mut ids, today) }
            })
            .collect();
        Self { town: TOWN, villages: VILLAGES.to_vec(), grids, households }
    }

    pub fn residents(&self) -> usize {
        self.households.iter().map(|h| h.members.len()).sum()
    }

    pub fn minors(&self, today: NaiveDate) -> usize {
        self.households.iter().flat_map(|h| &h.members).filter(|m| age(m.birth, today) < 18).count()
    }

    /// The households CSV cadres import (`jiaxin import`'s format), with the grids' ids.
    pub fn import_csv(&self, grid_ids: &[String]) -> String {
        let mut csv = String::from("household_ref,grid,address,relation,name,id_number\n");
        for (h, household) in self.households.iter().enumerate() {
            for member in &household.members {
                let grid = &grid_ids[household.grid];
                csv.push_str(&format!(
                    "D{h},{grid},{},{},{},{}\n",
                    household.address, member.relation, member.name, member.id_number
                ));
            }
        }
        csv
    }

    /// The year's activity before `today`: every household does a few good things, the most
    /// active many; about one in thirty is recorded for a minor or general fault; a handful for a
    /// serious one. Points stay inside each rule's range and yearly cap.
    pub fn activity(&self, seed: u64, today: NaiveDate) -> Vec<Activity> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut out = Vec::new();
        for household in 0..self.households.len() {
            let activeness: f64 = rng.gen_range(0.0..1.0);
            let items = match activeness {
                a if a < 0.15 => rng.gen_range(1..3),
                a if a < 0.60 => rng.gen_range(3..9),
                a if a < 0.87 => rng.gen_range(9..17),
                a if a < 0.97 => rng.gen_range(17..29),
                _ => rng.gen_range(35..51),
            };
            let mut used: HashMap<&str, i64> = HashMap::new();
            for _ in 0..items {
                let rule = pick(&mut rng, &BONUSES);
                let points = rng.gen_range(rule.min..=rule.max);
                let so_far = used.entry(rule.code).or_default();
                if *so_far + points > rule.yearly_cap {
                    continue;
                }
                *so_far += points;
                out.push(Activity { household, rule: rule.code, points, occurred_on: day_this_year(&mut rng, today) });
            }
            if rng.gen_bool(0.02) {
                let rule = &REVIEWED_BONUSES[usize::from(rng.gen_bool(0.1))];
                let points = rng.gen_range(rule.min..=rule.max);
                out.push(Activity { household, rule: rule.code, points, occurred_on: day_this_year(&mut rng, today) });
            }
            if rng.gen_bool(1.0 / 30.0) {
                let rule = pick(&mut rng, &FAULTS);
                let points = rng.gen_range(rule.min..=rule.max);
                out.push(Activity { household, rule: rule.code, points, occurred_on: day_this_year(&mut rng, today) });
            }
        }
        // A few serious ones, in different villages.
        for k in 0..self.households.len().div_ceil(1000).min(5) {
            let household = (k * 997 + 13) % self.households.len();
            let rule = &SERIOUS[k % SERIOUS.len()];
            out.push(Activity {
                household,
                rule: rule.code,
                points: rule.min,
                occurred_on: day_this_year(&mut rng, today),
            });
        }
        out
    }
}

/// The catalogue rules the demo's cadres record (village cadres may record each of them).
struct Rule {
    code: &'static str,
    min: i64,
    max: i64,
    yearly_cap: i64,
}

/// Bonuses a village cadre may record that count at once (no review: small, not self-reportable).
const BONUSES: [Rule; 12] = [
    Rule { code: "A01", min: 2, max: 2, yearly_cap: 12 }, // 参加村(居)民会议
    Rule { code: "A02", min: 3, max: 3, yearly_cap: 12 }, // 参与村务监督、民主评议
    Rule { code: "A04", min: 3, max: 5, yearly_cap: 20 }, // 参与调解邻里矛盾纠纷
    Rule { code: "A05", min: 2, max: 2, yearly_cap: 2 },  // 按时缴纳医保
    Rule { code: "A06", min: 2, max: 2, yearly_cap: 6 },  // 配合人口普查、养老认证
    Rule { code: "B01", min: 2, max: 3, yearly_cap: 12 }, // 爱护集体公共设施
    Rule { code: "B04", min: 3, max: 5, yearly_cap: 20 }, // 参与公益设施建设
    Rule { code: "C04", min: 3, max: 5, yearly_cap: 30 }, // 关爱孤寡老人、留守儿童
    Rule { code: "C01", min: 5, max: 5, yearly_cap: 10 }, // 文明操办红白喜事
    Rule { code: "D02", min: 5, max: 5, yearly_cap: 5 },  // 美丽庭院
    Rule { code: "C08", min: 5, max: 5, yearly_cap: 10 }, // 子女考入高等院校或参军入伍
    Rule { code: "E02", min: 2, max: 5, yearly_cap: 30 }, // 治安巡逻、防汛抗旱
];

/// Bonuses the council reviews first: volunteering (self-reportable) and county-level awards.
const REVIEWED_BONUSES: [Rule; 2] = [
    Rule { code: "C03", min: 2, max: 5, yearly_cap: 30 }, // 参加志愿服务活动
    Rule { code: "A08", min: 20, max: 20, yearly_cap: 100 }, // 获得县级以上表彰
];

const FAULTS: [Rule; 5] = [
    Rule { code: "C09", min: 5, max: 10, yearly_cap: 20 }, // 大操大办红白喜事 (minor)
    Rule { code: "C10", min: 5, max: 10, yearly_cap: 30 }, // 不遵守公序良俗 (minor)
    Rule { code: "C11", min: 5, max: 15, yearly_cap: 30 }, // 邻里之间言行粗暴 (general)
    Rule { code: "D06", min: 2, max: 5, yearly_cap: 20 },  // 乱扔乱倒垃圾 (minor)
    Rule { code: "D07", min: 10, max: 20, yearly_cap: 40 }, // 露天焚烧秸秆 (general)
];

const SERIOUS: [Rule; 2] = [
    Rule { code: "B08", min: 20, max: 40, yearly_cap: 80 }, // 违法占地建房、私搭乱建
    Rule { code: "E09", min: 30, max: 50, yearly_cap: 100 }, // 参与或组织非法宗教、传销活动
];

/// One of `items` (never empty: they are the constants above).
fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// A day in the twelve months before `today`.
fn day_this_year(rng: &mut StdRng, today: NaiveDate) -> NaiveDate {
    today - chrono::Days::new(rng.gen_range(1..=330))
}

pub fn age(birth: NaiveDate, today: NaiveDate) -> i32 {
    let mut years = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

/// A household: a head (30–75), usually a spouse, children of plausible ages (some minors), and
/// sometimes an elderly parent. Sizes 1–6, about 2.9 on average.
fn family(rng: &mut StdRng, ids: &mut IdNumbers, today: NaiveDate) -> Vec<Member> {
    let surname = *pick(rng, &SURNAMES);
    let head_age = rng.gen_range(30..76);
    let head_male = rng.gen_bool(0.8);
    let mut members = vec![ids.member(rng, "户主", surname, head_male, head_age, today)];
    if head_age > 30 && rng.gen_bool(0.82) {
        let spouse_age = (head_age + rng.gen_range(-4..4)).clamp(22, 85);
        members.push(ids.member(rng, "配偶", surname, !head_male, spouse_age, today));
    }
    let children = match rng.gen_range(0..10) {
        0..=2 => 0,
        3..=6 => 1,
        7..=8 => 2,
        _ => 3,
    };
    for _ in 0..children {
        let child_age = (head_age - rng.gen_range(22..34)).max(0);
        let male = rng.gen_bool(0.5);
        members.push(ids.member(rng, "子女", surname, male, child_age, today));
    }
    if head_age < 55 && rng.gen_bool(0.25) {
        let parent_age = (head_age + rng.gen_range(24..32)).min(95);
        let male = rng.gen_bool(0.4);
        members.push(ids.member(rng, "父母", surname, male, parent_age, today));
    }
    members
}

/// Hands out ID numbers no two residents share: birth date, a per-date sequence whose parity
/// is the sex (odd male), and the GB 11643 check digit.
#[derive(Default)]
struct IdNumbers {
    used_per_day: HashMap<NaiveDate, u32>,
}

impl IdNumbers {
    fn member(
        &mut self,
        rng: &mut StdRng,
        relation: &'static str,
        surname: &str,
        male: bool,
        age_years: i32,
        today: NaiveDate,
    ) -> Member {
        let mut birth = today - chrono::Days::new(age_years as u64 * 365 + rng.gen_range(1..365));
        // At most 500 residents of one sex per birth date: move to the next day when full.
        let sequence = loop {
            let used = self.used_per_day.entry(birth).or_default();
            if *used < 998 {
                let candidate = *used + if used.is_multiple_of(2) == male { 1 } else { 2 };
                *used = candidate;
                break candidate;
            }
            birth = birth - chrono::Days::new(1);
        };
        let given = pick(rng, if male { &GIVEN_MALE } else { &GIVEN_FEMALE });
        Member { relation, name: format!("{surname}{given}"), id_number: id_number(birth, sequence), birth }
    }
}

/// An 18-digit ID number with its check digit (GB 11643-1999).
pub fn id_number(birth: NaiveDate, sequence: u32) -> String {
    let first17 = format!("{REGION}{}{:03}", birth.format("%Y%m%d"), sequence);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.bytes().zip(weights).map(|(d, w)| u32::from(d - b'0') * w).sum();
    format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_county_and_another_seed_another() {
        let a = County::generate(500, 7, today());
        let b = County::generate(500, 7, today());
        let c = County::generate(500, 8, today());
        assert_eq!(a.import_csv(&vec!["g".into(); a.grids.len()]), b.import_csv(&vec!["g".into(); b.grids.len()]));
        assert_ne!(a.import_csv(&vec!["g".into(); a.grids.len()]), c.import_csv(&vec!["g".into(); c.grids.len()]));
        assert_eq!(a.activity(7, today()).len(), b.activity(7, today()).len());
    }

    #[test]
    fn households_are_realistic_and_every_id_number_is_valid_and_unique() {
        let county = County::generate(5_000, 2026, today());
        assert_eq!(county.households.len(), 5_000);
        assert_eq!(county.villages.len(), 10);
        let per_grid = 5_000 / county.grids.len();
        assert!((100..=300).contains(&per_grid), "{per_grid} households per grid");
        let mut seen = HashSet::new();
        for household in &county.households {
            assert!((1..=6).contains(&household.members.len()));
            assert_eq!(household.members.iter().filter(|m| m.relation == "户主").count(), 1);
            assert!(age(household.members[0].birth, today()) >= 18, "heads are adults");
            for member in &household.members {
                let n = &member.id_number;
                assert!(seen.insert(n.clone()), "duplicate {n}");
                assert_eq!(id_number(member.birth, n[14..17].parse().unwrap()), *n, "check digit of {n}");
            }
        }
        let average = county.residents() as f64 / 5_000.0;
        assert!((2.3..3.5).contains(&average), "average household {average}");
        let minors = county.minors(today());
        assert!(minors > 250 && minors < county.residents() / 3, "{minors} minors");
    }

    #[test]
    fn the_year_has_far_more_bonuses_than_faults_and_a_few_serious_ones_within_caps() {
        let county = County::generate(5_000, 2026, today());
        let activity = county.activity(2026, today());
        let faults = activity.iter().filter(|a| FAULTS.iter().chain(&SERIOUS).any(|r| r.code == a.rule)).count();
        let serious = activity.iter().filter(|a| SERIOUS.iter().any(|r| r.code == a.rule)).count();
        assert!(faults * 20 < activity.len(), "{faults} faults of {}", activity.len());
        assert_eq!(serious, 5);
        let mut totals: HashMap<(usize, &str), i64> = HashMap::new();
        for a in &activity {
            assert!(a.occurred_on < today() && a.occurred_on >= today() - chrono::Days::new(330));
            *totals.entry((a.household, a.rule)).or_default() += a.points;
        }
        for ((_, rule), total) in totals {
            let all = BONUSES.iter().chain(&REVIEWED_BONUSES).chain(&FAULTS).chain(&SERIOUS);
            let cap = all.into_iter().find(|r| r.code == rule).unwrap().yearly_cap;
            assert!(total <= cap, "{rule}: {total} over its cap {cap}");
        }
    }
}
