//! End-to-end tests of the identity service, driven only through gRPC as a client would.

use crate::common::{self, ADMIN_PASSWORD, TestSystem, authed, code, id_number};
use jiaxin_kit::error::field_violations;
use jiaxin_proto::identity::{
    identity_service_client::IdentityServiceClient, list_membership_history_request::Subject, *,
};
use tonic::{Code, transport::Channel};

struct Tree {
    root: String,
    town_a: String,
    town_b: String,
    village_a: String,
    grid_a1: String,
    grid_a2: String,
}

async fn node(
    client: &mut IdentityServiceClient<Channel>,
    token: &str,
    parent: &str,
    kind: OrgNodeKind,
    name: &str,
) -> String {
    common::create_node(client, token, parent, kind, name, "").await
}

async fn build_tree(client: &mut IdentityServiceClient<Channel>, token: &str) -> Tree {
    let root = common::own_scope(client, token).await;
    let town_a = node(client, token, &root, OrgNodeKind::Town, "马坝镇").await;
    let town_b = node(client, token, &root, OrgNodeKind::Street, "盱城街道").await;
    let village_a = node(client, token, &town_a, OrgNodeKind::Village, "新街村").await;
    let grid_a1 = node(client, token, &village_a, OrgNodeKind::Grid, "第一网格").await;
    let grid_a2 = node(client, token, &village_a, OrgNodeKind::Grid, "第二网格").await;
    Tree { root, town_a, town_b, village_a, grid_a1, grid_a2 }
}

fn resident(name: &str, id: &str) -> NewResident {
    NewResident { name: name.into(), id_number: id.into(), phone: String::new() }
}

async fn register(
    client: &mut IdentityServiceClient<Channel>,
    token: &str,
    grid: &str,
    head: NewResident,
) -> Household {
    client
        .register_household(authed(
            token,
            RegisterHouseholdRequest {
                grid_id: grid.into(),
                address: "新街村12号".into(),
                head: Some(head),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .household
        .unwrap()
}

async fn households_in(client: &mut IdentityServiceClient<Channel>, token: &str, node: &str) -> Vec<Household> {
    client
        .list_households(authed(
            token,
            ListHouseholdsRequest { org_node_id: node.into(), page_size: 1000, page_token: String::new() },
        ))
        .await
        .unwrap()
        .into_inner()
        .households
}

#[tokio::test]
async fn admin_logs_in_and_builds_moves_and_lists_the_org_tree() {
    let sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let mut client = sys.identity().await;
    let tree = build_tree(&mut client, &token).await;

    let children = client
        .list_org_children(authed(
            &token,
            ListOrgChildrenRequest { parent_id: tree.root.clone(), page_size: 1, page_token: String::new() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(children.children.len(), 1);
    assert!(!children.next_page_token.is_empty(), "a second page follows");
    let rest = client
        .list_org_children(authed(
            &token,
            ListOrgChildrenRequest { parent_id: tree.root.clone(), page_size: 1, page_token: children.next_page_token },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<String> = children.children.iter().chain(&rest.children).map(|n| n.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["盱城街道", "马坝镇"]);

    // A grid cannot sit directly under a town.
    let bad = client
        .create_org_node(authed(
            &token,
            CreateOrgNodeRequest {
                parent_id: tree.town_a.clone(),
                kind: OrgNodeKind::Grid as i32,
                name: "错网格".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(code(bad), Code::InvalidArgument);

    // Move the village (with its grids) to the other town: every path below follows.
    client
        .move_org_node(authed(
            &token,
            MoveOrgNodeRequest { id: tree.village_a.clone(), new_parent_id: tree.town_b.clone() },
        ))
        .await
        .unwrap();
    let grid = client
        .get_org_node(authed(&token, GetOrgNodeRequest { id: tree.grid_a1.clone() }))
        .await
        .unwrap()
        .into_inner()
        .org_node
        .unwrap();
    // The path runs from the deployment's root; this test's county is at its end.
    assert_eq!(
        grid.path[grid.path.len() - 4..],
        [tree.root.clone(), tree.town_b.clone(), tree.village_a.clone(), tree.grid_a1.clone()]
    );
    // A node cannot move under its own descendant.
    let cycle = client
        .move_org_node(authed(
            &token,
            MoveOrgNodeRequest { id: tree.town_b.clone(), new_parent_id: tree.village_a.clone() },
        ))
        .await;
    assert_eq!(code(cycle), Code::InvalidArgument);

    let renamed = client
        .rename_org_node(authed(&token, RenameOrgNodeRequest { id: tree.village_a.clone(), name: "新街社区".into() }))
        .await
        .unwrap()
        .into_inner()
        .org_node
        .unwrap();
    assert_eq!(renamed.name, "新街社区");
}

#[tokio::test]
async fn households_change_through_their_whole_life_with_history() {
    let sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let mut client = sys.identity().await;
    let tree = build_tree(&mut client, &token).await;

    let head_id = id_number("320830", "19700305", 11);
    let household = register(&mut client, &token, &tree.grid_a1, resident("陈家明", &head_id)).await;
    assert_eq!(household.members.len(), 1);
    let head = &household.members[0];
    assert_eq!(head.relation, Relation::Head as i32);
    assert_eq!(head.id_number_masked, format!("{}**********{}", &head_id[..4], &head_id[14..]));
    assert_eq!(head.birth_date, "1970-03-05");

    let add = |name: &str, id: String, relation: Relation| AddMemberRequest {
        household_id: household.id.clone(),
        resident: Some(NewResident { name: name.into(), id_number: id, phone: "13800001234".into() }),
        relation: relation as i32,
    };
    let spouse = client
        .add_member(authed(&token, add("王秀英", id_number("320830", "19720708", 22), Relation::Spouse)))
        .await
        .unwrap()
        .into_inner()
        .resident
        .unwrap();
    assert_eq!(spouse.phone_masked, "138****1234");
    let son = client
        .add_member(authed(&token, add("陈志强", id_number("320830", "19980101", 31), Relation::Child)))
        .await
        .unwrap()
        .into_inner()
        .resident
        .unwrap();
    let daughter_in_law = client
        .add_member(authed(&token, add("李梅", id_number("320830", "19990202", 42), Relation::Other)))
        .await
        .unwrap()
        .into_inner()
        .resident
        .unwrap();
    let grandchild = client
        .add_member(authed(&token, add("陈小宝", id_number("320830", "20200606", 51), Relation::Grandchild)))
        .await
        .unwrap()
        .into_inner()
        .resident
        .unwrap();

    // The same person cannot be registered twice.
    let twice = client.add_member(authed(&token, add("陈家明", head_id.clone(), Relation::Other))).await;
    let status = twice.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&status)[0].field, "resident.id_number");
    assert!(!status.message().contains(&head_id), "errors never repeat an ID number");

    // 分户: the son's family leaves; a minor cannot head the new household.
    let minor_head = client
        .split_household(authed(
            &token,
            SplitHouseholdRequest {
                household_id: household.id.clone(),
                resident_ids: vec![son.id.clone(), grandchild.id.clone()],
                new_head_resident_id: grandchild.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(field_violations(&minor_head.unwrap_err())[0].field, "new_head_resident_id");
    let split = client
        .split_household(authed(
            &token,
            SplitHouseholdRequest {
                household_id: household.id.clone(),
                resident_ids: vec![son.id.clone(), daughter_in_law.id.clone(), grandchild.id.clone()],
                new_head_resident_id: son.id.clone(),
                grid_id: tree.grid_a2.clone(),
                address: "新街村30号".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let (original, created) = (split.original.unwrap(), split.created.unwrap());
    assert_eq!(original.members.len(), 2);
    assert_eq!(created.members.len(), 3);
    assert_eq!(created.head_resident_id, son.id);
    assert_eq!(created.grid_id, tree.grid_a2);

    // The daughter-in-law moves back to the original household.
    let moved = client
        .move_member(authed(
            &token,
            MoveMemberRequest {
                resident_id: daughter_in_law.id.clone(),
                to_household_id: household.id.clone(),
                relation: Relation::Other as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.to_household.unwrap().members.len(), 3);
    assert_eq!(moved.from_household.unwrap().members.len(), 2);

    // The head dies: a new head is required and named in the error.
    let no_heir = client
        .record_death(authed(
            &token,
            RecordDeathRequest {
                resident_id: head.id.clone(),
                date_of_death: "2026-10-01".into(),
                new_head_resident_id: String::new(),
            },
        ))
        .await;
    assert_eq!(field_violations(&no_heir.unwrap_err())[0].field, "new_head_resident_id");
    let dead = client
        .record_death(authed(
            &token,
            RecordDeathRequest {
                resident_id: head.id.clone(),
                date_of_death: "2026-10-01".into(),
                new_head_resident_id: spouse.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .resident
        .unwrap();
    assert_eq!(dead.death_date, "2026-10-01");
    assert_eq!(dead.household_id, "", "the deceased left the household");
    let after = client
        .get_household(authed(&token, GetHouseholdRequest { id: household.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .household
        .unwrap();
    assert_eq!(after.head_resident_id, spouse.id);

    // 合户: the son's household joins the original; it is dissolved.
    let merged = client
        .merge_households(authed(
            &token,
            MergeHouseholdsRequest {
                source_household_id: created.id.clone(),
                target_household_id: household.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .household
        .unwrap();
    assert_eq!(merged.members.len(), 4);
    let gone = client
        .get_household(authed(&token, GetHouseholdRequest { id: created.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .household
        .unwrap();
    assert_eq!(gone.status, HouseholdStatus::Dissolved as i32);
    assert!(gone.members.is_empty());

    // The son's history: born into the first household, split out, merged back.
    let history = client
        .list_membership_history(authed(
            &token,
            ListMembershipHistoryRequest { subject: Some(Subject::ResidentId(son.id.clone())) },
        ))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let steps: Vec<(String, i32, i32)> =
        history.iter().map(|e| (e.household_id.clone(), e.join_reason, e.leave_reason)).collect();
    assert_eq!(
        steps,
        [
            (household.id.clone(), MembershipReason::Added as i32, MembershipReason::Split as i32),
            (created.id.clone(), MembershipReason::Split as i32, MembershipReason::Merged as i32),
            (household.id.clone(), MembershipReason::Merged as i32, MembershipReason::Unspecified as i32),
        ]
    );
    assert!(history[2].left_at.is_none());

    // Lookup by ID number goes through the blind index.
    let found = client
        .find_resident(authed(&token, FindResidentRequest { id_number: id_number("320830", "19720708", 22) }))
        .await
        .unwrap()
        .into_inner()
        .resident
        .unwrap();
    assert_eq!(found.id, spouse.id);
}

#[tokio::test]
async fn a_grid_worker_sees_only_their_grid_and_cannot_tell_what_exists_elsewhere() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let mut client = sys.identity().await;
    let tree = build_tree(&mut client, &admin).await;
    let mine =
        register(&mut client, &admin, &tree.grid_a1, resident("张三", &id_number("320830", "19800101", 1))).await;
    let theirs =
        register(&mut client, &admin, &tree.grid_a2, resident("李四", &id_number("320830", "19810101", 2))).await;

    // Usernames are global: in the shared cluster each test names its own.
    let worker_name = format!("gridworker-{}", uuid::Uuid::new_v4().simple());
    client
        .create_account(authed(
            &admin,
            CreateAccountRequest {
                username: worker_name.clone(),
                display_name: "网格员小王".into(),
                roles: vec![Role::GridWorker as i32],
                org_node_id: tree.grid_a1.clone(),
                password: "grid-worker-pass".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let worker = sys.login(&worker_name, "grid-worker-pass").await;

    // In their grid: read and change.
    client.get_household(authed(&worker, GetHouseholdRequest { id: mine.id.clone() })).await.unwrap();
    client
        .add_member(authed(
            &worker,
            AddMemberRequest {
                household_id: mine.id.clone(),
                resident: Some(resident("张小三", &id_number("320830", "20100101", 3))),
                relation: Relation::Child as i32,
            },
        ))
        .await
        .unwrap();
    assert_eq!(households_in(&mut client, &worker, "").await.len(), 1);

    // Outside: every answer reads exactly like a household that does not exist.
    let elsewhere =
        client.get_household(authed(&worker, GetHouseholdRequest { id: theirs.id.clone() })).await.unwrap_err();
    let nowhere = client
        .get_household(authed(&worker, GetHouseholdRequest { id: "01900000-0000-7000-8000-000000000000".into() }))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::NotFound);
    assert_eq!((elsewhere.code(), elsewhere.message()), (nowhere.code(), nowhere.message()));
    let change = client
        .add_member(authed(
            &worker,
            AddMemberRequest {
                household_id: theirs.id.clone(),
                resident: Some(resident("王五", &id_number("320830", "19900101", 4))),
                relation: Relation::Child as i32,
            },
        ))
        .await;
    assert_eq!(code(change), Code::NotFound);
    let register_elsewhere = client
        .register_household(authed(
            &worker,
            RegisterHouseholdRequest {
                grid_id: tree.grid_a2.clone(),
                address: "x".into(),
                head: Some(resident("赵六", &id_number("320830", "19910101", 5))),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(code(register_elsewhere), Code::NotFound);
    let list_elsewhere = client
        .list_households(authed(
            &worker,
            ListHouseholdsRequest { org_node_id: tree.grid_a2.clone(), ..Default::default() },
        ))
        .await;
    assert_eq!(code(list_elsewhere), Code::NotFound);
    let find_elsewhere = client
        .find_resident(authed(&worker, FindResidentRequest { id_number: id_number("320830", "19810101", 2) }))
        .await;
    assert_eq!(code(find_elsewhere), Code::NotFound);
    // Nothing changed in the other grid.
    assert_eq!(households_in(&mut client, &admin, &tree.grid_a2).await[0].members.len(), 1);

    // Nor may a grid worker administer accounts or the tree.
    let escalate = client
        .create_account(authed(
            &worker,
            CreateAccountRequest {
                username: "evil".into(),
                display_name: "x".into(),
                roles: vec![Role::CountyAdmin as i32],
                org_node_id: tree.root.clone(),
                password: "0123456789ab".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(code(escalate), Code::PermissionDenied);
    let _ = tree.town_a;
}

#[tokio::test]
async fn bad_input_names_the_field_and_writes_nothing() {
    let sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let mut client = sys.identity().await;
    let tree = build_tree(&mut client, &token).await;

    let mut bad_id = id_number("320830", "19800101", 7);
    let last = if bad_id.ends_with('1') { "2" } else { "1" };
    bad_id.replace_range(17..18, last);
    let status = client
        .register_household(authed(
            &token,
            RegisterHouseholdRequest {
                grid_id: tree.grid_a1.clone(),
                address: String::new(),
                head: Some(NewResident { name: "陈家明".into(), id_number: bad_id.clone(), phone: "12".into() }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields: Vec<String> = field_violations(&status).into_iter().map(|v| v.field).collect();
    fields.sort();
    assert_eq!(fields, ["address", "head.id_number", "head.phone"]);
    assert!(!status.message().contains(&bad_id));
    assert!(households_in(&mut client, &token, &tree.root).await.is_empty(), "nothing was written");

    let status = client
        .create_org_node(authed(
            &token,
            CreateOrgNodeRequest {
                parent_id: tree.root.clone(),
                kind: OrgNodeKind::Town as i32,
                name: " ".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "name");
    let status = client
        .list_households(authed(
            &token,
            ListHouseholdsRequest { org_node_id: String::new(), page_size: -5, page_token: String::new() },
        ))
        .await
        .unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "page_size");
    let status = client
        .create_account(authed(
            &token,
            CreateAccountRequest {
                username: "a".into(),
                display_name: "x".into(),
                roles: vec![],
                org_node_id: tree.root.clone(),
                password: "short".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    let mut fields: Vec<String> = field_violations(&status).into_iter().map(|v| v.field).collect();
    fields.sort();
    assert_eq!(fields, ["password", "roles", "username"]);
}

#[tokio::test]
async fn retried_creates_are_idempotent_and_a_reused_request_id_is_refused() {
    let sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let mut client = sys.identity().await;
    let tree = build_tree(&mut client, &token).await;
    let request = RegisterHouseholdRequest {
        request_id: "req-001".into(),
        grid_id: tree.grid_a1.clone(),
        address: "新街村1号".into(),
        head: Some(resident("周一", &id_number("320830", "19750101", 9))),
    };
    let first =
        client.register_household(authed(&token, request.clone())).await.unwrap().into_inner().household.unwrap();
    let again =
        client.register_household(authed(&token, request.clone())).await.unwrap().into_inner().household.unwrap();
    assert_eq!(first.id, again.id);
    let mut other = request.clone();
    other.address = "别处".into();
    let status = client.register_household(authed(&token, other)).await.unwrap_err();
    assert_eq!(field_violations(&status)[0].field, "request_id");
    assert_eq!(households_in(&mut client, &token, &tree.root).await.len(), 1);
}

#[tokio::test]
async fn logins_lock_after_repeated_failures_and_refresh_tokens_are_single_use() {
    let sys = TestSystem::start().await;
    let mut client = sys.identity().await;

    let good = client
        .login(LoginRequest { username: sys.admin_username().into(), password: ADMIN_PASSWORD.into() })
        .await
        .unwrap()
        .into_inner();
    let refreshed = client
        .refresh_token(RefreshTokenRequest { refresh_token: good.refresh_token.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code(client.refresh_token(RefreshTokenRequest { refresh_token: good.refresh_token.clone() }).await),
        Code::Unauthenticated
    );
    client.get_current_account(authed(&refreshed.access_token, GetCurrentAccountRequest {})).await.unwrap();
    client.logout(LogoutRequest { refresh_token: refreshed.refresh_token.clone() }).await.unwrap();
    assert_eq!(
        code(client.refresh_token(RefreshTokenRequest { refresh_token: refreshed.refresh_token }).await),
        Code::Unauthenticated
    );

    let unknown =
        client.login(LoginRequest { username: "nobody".into(), password: "whatever-123".into() }).await.unwrap_err();
    for _ in 0..5 {
        let wrong = client
            .login(LoginRequest { username: sys.admin_username().into(), password: "wrong-password".into() })
            .await
            .unwrap_err();
        assert_eq!(
            (wrong.code(), wrong.message()),
            (unknown.code(), unknown.message()),
            "no hint which accounts exist"
        );
    }
    let locked =
        client.login(LoginRequest { username: sys.admin_username().into(), password: ADMIN_PASSWORD.into() }).await;
    assert_eq!(code(locked), Code::Unauthenticated, "the right password is refused while locked");
}

#[tokio::test]
async fn health_and_reflection_need_no_token() {
    let sys = TestSystem::start().await;
    let channel = sys.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest { service: "jiaxin.identity.v1.IdentityService".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // Reflection lists the services, so grpcurl and friends can discover the API.
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"jiaxin.identity.v1.IdentityService".to_owned()), "{names:?}");
}
