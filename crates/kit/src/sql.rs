//! Small pieces of SQL text every service builds the same way, for both SQLite and PostgreSQL
//! (both number their parameters `$1, $2, …` through sqlx's `Any` driver).

use crate::{storage::Dialect, writes::Placeholders};

/// `$first, $first+1, …` for `n` values: an `IN (…)` list. For long lists on SQLite, where
/// binding numbered parameters costs n², [`Placeholders::list`] gives the anonymous form.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `($1, …, $columns), (…)` for `rows` rows of a multi-row `INSERT … VALUES`, parameters bound
/// in order. SQLite gets anonymous `?`s instead: it finds a numbered parameter's name by a linear
/// scan, which makes binding a statement of n numbered parameters cost n² (measured: a quarter
/// of a batch's time at 10,000 parameters); anonymous ones bind in order at no such cost.
pub fn values(dialect: Dialect, rows: usize, columns: usize) -> String {
    Placeholders::new(dialect).rows(rows, columns)
}

/// The ids of a materialised path `/a/b/c/`, root first.
pub fn path_ids(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// A materialised path from ids, root first: `/a/b/c/`.
pub fn path_of<S: AsRef<str>>(ids: &[S]) -> String {
    let mut path = String::from("/");
    for id in ids {
        path.push_str(id.as_ref());
        path.push('/');
    }
    path
}

/// The half-open range `[path, upper)` that holds exactly the materialised paths (`/a/b/`) of a
/// node's subtree: every descendant's path starts with `path`, and `'0'` is the byte after
/// `'/'`. A range, not `LIKE`, so a plain index on the path serves it (PostgreSQL columns are
/// `COLLATE "C"` for this).
pub fn subtree_range(path: &str) -> (String, String) {
    (path.to_owned(), format!("{}0", path.strip_suffix('/').unwrap_or(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_on_from_the_first() {
        assert_eq!(placeholders(2, 3), "$2, $3, $4");
        let mut postgres = Placeholders::new(Dialect::Postgres);
        assert_eq!((postgres.one(), postgres.list(3)), ("$1".to_owned(), "$2, $3, $4".to_owned()));
        let mut sqlite = Placeholders::new(Dialect::Sqlite);
        assert_eq!((sqlite.one(), sqlite.list(2)), ("?".to_owned(), "?, ?".to_owned()));
        assert_eq!(values(Dialect::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values(Dialect::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn paths_and_their_ids_go_both_ways() {
        assert_eq!(path_of(&["a", "b"]), "/a/b/");
        assert_eq!(path_ids("/a/b/"), ["a", "b"]);
    }

    #[test]
    fn a_subtree_range_holds_descendants_only() {
        let (from, to) = subtree_range("/a/b/");
        for inside in ["/a/b/", "/a/b/c/", "/a/b/zz/"] {
            assert!(from.as_str() <= inside && inside < to.as_str(), "{inside}");
        }
        for outside in ["/a/bc/", "/a/", "/a/b0/"] {
            assert!(!(from.as_str() <= outside && outside < to.as_str()), "{outside}");
        }
    }
}
