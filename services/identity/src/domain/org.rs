//! The org tree's shape: which kind of node may sit under which, and the materialised path that
//! makes "is this inside that subtree" a string comparison instead of a tree walk.

use jiaxin_proto::identity::OrgNodeKind;

/// The level of a kind: province 1 … grid 6. Towns and streets share a level, as do villages and
/// communities.
pub fn level(kind: OrgNodeKind) -> Option<u8> {
    match kind {
        OrgNodeKind::Province => Some(1),
        OrgNodeKind::City => Some(2),
        OrgNodeKind::County => Some(3),
        OrgNodeKind::Town | OrgNodeKind::Street => Some(4),
        OrgNodeKind::Village | OrgNodeKind::Community => Some(5),
        OrgNodeKind::Grid => Some(6),
        OrgNodeKind::Unspecified => None,
    }
}

/// A child must sit exactly one level below its parent; a root may be any kind above a grid (a
/// deployment holds a province, a city or one county).
pub fn may_contain(parent: Option<OrgNodeKind>, child: OrgNodeKind) -> bool {
    match (parent.and_then(level), level(child)) {
        (None, Some(c)) => c < 6,
        (Some(p), Some(c)) => c == p + 1,
        _ => false,
    }
}

/// A node's path: the ids from the root down to the node, as `/a/b/c/`.
pub fn child_path(parent_path: Option<&str>, id: &str) -> String {
    format!("{}{id}/", parent_path.unwrap_or("/"))
}

/// The ids on a path, root first.
pub fn path_ids(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

pub use jiaxin_kit::sql::subtree_range;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_sit_one_level_down() {
        assert!(may_contain(None, OrgNodeKind::County));
        assert!(!may_contain(None, OrgNodeKind::Grid));
        assert!(may_contain(Some(OrgNodeKind::County), OrgNodeKind::Street));
        assert!(may_contain(Some(OrgNodeKind::Street), OrgNodeKind::Village));
        assert!(!may_contain(Some(OrgNodeKind::County), OrgNodeKind::Grid));
        assert!(!may_contain(Some(OrgNodeKind::Village), OrgNodeKind::Unspecified));
    }

    #[test]
    fn subtree_range_holds_descendants_only() {
        let (lo, hi) = subtree_range("/a/b/");
        for inside in ["/a/b/", "/a/b/c/", "/a/b/c/d/"] {
            assert!(inside >= lo.as_str() && inside < hi.as_str(), "{inside}");
        }
        for outside in ["/a/", "/a/bc/", "/a/c/", "/a/b0/"] {
            assert!(!(outside >= lo.as_str() && outside < hi.as_str()), "{outside}");
        }
        assert_eq!(path_ids("/a/b/"), ["a", "b"]);
        assert_eq!(child_path(Some("/a/"), "b"), "/a/b/");
    }
}
