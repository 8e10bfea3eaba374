//! Conversions between proto enums and the values stored or carried in tokens.

use jiaxin_kit::auth::Role as KitRole;
use jiaxin_proto::identity::Role;

pub fn role_to_kit(role: Role) -> Option<KitRole> {
    Some(match role {
        Role::Unspecified => return None,
        Role::CountyAdmin => KitRole::CountyAdmin,
        Role::TownAdmin => KitRole::TownAdmin,
        Role::VillageCadre => KitRole::VillageCadre,
        Role::GridWorker => KitRole::GridWorker,
        Role::PropertyManager => KitRole::PropertyManager,
        Role::Volunteer => KitRole::Volunteer,
        Role::CouncilMember => KitRole::CouncilMember,
        Role::Resident => KitRole::Resident,
        Role::Agency => KitRole::Agency,
        Role::BankOfficer => KitRole::BankOfficer,
        Role::Province => KitRole::Province,
        Role::Auditor => KitRole::Auditor,
    })
}

pub fn role_from_kit(role: KitRole) -> Role {
    match role {
        KitRole::CountyAdmin => Role::CountyAdmin,
        KitRole::TownAdmin => Role::TownAdmin,
        KitRole::VillageCadre => Role::VillageCadre,
        KitRole::GridWorker => Role::GridWorker,
        KitRole::PropertyManager => Role::PropertyManager,
        KitRole::Volunteer => Role::Volunteer,
        KitRole::CouncilMember => Role::CouncilMember,
        KitRole::Resident => Role::Resident,
        KitRole::Agency => Role::Agency,
        KitRole::BankOfficer => Role::BankOfficer,
        KitRole::Province => Role::Province,
        KitRole::Auditor => Role::Auditor,
    }
}

/// Roles as stored: their proto numbers, comma-separated.
pub fn roles_to_column(roles: &[KitRole]) -> String {
    roles.iter().map(|r| (role_from_kit(*r) as i32).to_string()).collect::<Vec<_>>().join(",")
}

pub fn roles_from_column(column: &str) -> Vec<KitRole> {
    column
        .split(',')
        .filter_map(|n| n.trim().parse::<i32>().ok())
        .filter_map(|n| Role::try_from(n).ok())
        .filter_map(role_to_kit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_the_column() {
        let roles = vec![KitRole::CouncilMember, KitRole::VillageCadre];
        assert_eq!(roles_from_column(&roles_to_column(&roles)), roles);
    }
}
