//! Who may do what in identity. Scope (which objects) is checked separately with
//! `Caller::covers`; these are the role rules.

use jiaxin_kit::auth::Role;

/// May create, rename and move org nodes inside their scope.
pub const ORG_ADMINS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre];

/// May register and change households inside their scope.
pub const HOUSEHOLD_EDITORS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre, Role::GridWorker];

/// May read households inside their scope (residents read only their own, separately).
pub const HOUSEHOLD_READERS: &[Role] = &[
    Role::Province,
    Role::CountyAdmin,
    Role::TownAdmin,
    Role::VillageCadre,
    Role::GridWorker,
    Role::PropertyManager,
    Role::Volunteer,
    Role::CouncilMember,
    Role::Auditor,
];

/// May bulk-import households.
pub const IMPORTERS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin];

/// May manage accounts inside their scope.
pub const ACCOUNT_ADMINS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::TownAdmin];

/// May rotate the token-signing key (and only from the root of the deployment).
pub const KEY_ADMINS: &[Role] = &[Role::Province, Role::CountyAdmin];

/// Whether an administrator holding `granter_roles` may give an account `role`: nobody grants
/// more than they have, and a town grants only village-level and personal roles.
pub fn may_grant(granter_roles: &[Role], role: Role) -> bool {
    let town_grantable = matches!(
        role,
        Role::VillageCadre
            | Role::GridWorker
            | Role::PropertyManager
            | Role::Volunteer
            | Role::CouncilMember
            | Role::Resident
    );
    granter_roles.iter().any(|granter| match granter {
        Role::Province => true,
        Role::CountyAdmin => role != Role::Province,
        Role::TownAdmin => town_grantable,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_grants_above_themselves() {
        assert!(may_grant(&[Role::Province], Role::Province));
        assert!(may_grant(&[Role::CountyAdmin], Role::BankOfficer));
        assert!(!may_grant(&[Role::CountyAdmin], Role::Province));
        assert!(may_grant(&[Role::TownAdmin], Role::GridWorker));
        assert!(!may_grant(&[Role::TownAdmin], Role::TownAdmin));
        assert!(!may_grant(&[Role::GridWorker], Role::Resident));
    }
}
