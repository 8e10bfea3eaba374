//! Authentication on every RPC, and personal data at rest.

use std::str::FromStr;

use crate::common::{self, TestSystem, authed, id_number, signing_key};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ed25519_dalek::SigningKey;
use jiaxin::system::ServiceName;
use jiaxin_kit::auth::{Claims, ISSUER, Role, TokenSigner};
use jiaxin_proto::identity::{GetCurrentAccountRequest, NewResident, RegisterHouseholdRequest};
use tonic::{Code, codegen::http::uri::PathAndQuery, metadata::MetadataValue};

fn claims(sub: &str, org: &str, iat: i64, exp: i64) -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: sub.into(),
        roles: vec![Role::CountyAdmin],
        org: org.into(),
        rid: None,
        iat,
        exp,
        jti: "t".into(),
    }
}

#[tokio::test]
async fn every_rpc_refuses_missing_expired_tampered_wrong_key_and_unsigned_tokens() {
    let sys = TestSystem::start().await;
    let channel = sys.channel().await;
    let mut client = sys.identity().await;
    let login = client
        .login(jiaxin_proto::identity::LoginRequest {
            username: sys.admin_username().into(),
            password: common::ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let account = login.account.unwrap();
    let (kid, key) = signing_key(&sys).await;
    let now = chrono::Utc::now().timestamp();

    // A token made here with the real key is accepted: the forgeries below fail for their flaw alone.
    let minted =
        TokenSigner::new(&kid, key.clone()).sign(&claims(&account.id, &account.org_node_id, now, now + 600)).unwrap();
    client.get_current_account(authed(&minted, GetCurrentAccountRequest {})).await.unwrap();

    let expired = TokenSigner::new(&kid, key.clone())
        .sign(&claims(&account.id, &account.org_node_id, now - 3600, now - 1800))
        .unwrap();
    let wrong_key = TokenSigner::new(&kid, SigningKey::from_bytes(&[9; 32]))
        .sign(&claims(&account.id, &account.org_node_id, now, now + 600))
        .unwrap();
    let parts: Vec<&str> = login.access_token.split('.').collect();
    let mut widened = claims(&account.id, "some-other-root", now, now + 600);
    widened.roles.push(Role::Province);
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&widened).unwrap()), parts[2]);
    let unsigned = format!("{}.{}.", B64.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#)), parts[1]);
    let bad_tokens: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("garbage", Some("not-a-token".into())),
        ("expired", Some(expired)),
        ("tampered", Some(tampered)),
        ("wrong key", Some(wrong_key)),
        ("alg none", Some(unsigned)),
    ];

    let rpcs = common::token_rpcs();
    assert!(rpcs.len() >= 25, "the descriptors list the identity RPCs: {rpcs:?}");
    let mut checked = 0;
    for rpc in &rpcs {
        for (label, token) in &bad_tokens {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready().await.unwrap();
            let mut request = tonic::Request::new(());
            if let Some(token) = token {
                request
                    .metadata_mut()
                    .insert("authorization", MetadataValue::from_str(&format!("Bearer {token}")).unwrap());
            }
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            let result = grpc.unary(request, PathAndQuery::from_str(rpc).unwrap(), codec).await;
            let status = result.expect_err(&format!("{rpc} accepted a {label} token"));
            assert_eq!(status.code(), Code::Unauthenticated, "{rpc} with a {label} token: {status:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, rpcs.len() * bad_tokens.len());
}

#[tokio::test]
async fn no_plaintext_id_or_phone_number_is_stored() {
    let mut sys = TestSystem::start().await;
    let token = sys.admin_token().await;
    let mut client = sys.identity().await;
    let mut ids = Vec::new();
    let parent = common::grid_under_scope(&mut client, &token, "").await;
    for i in 0..20 {
        let id = id_number("320830", "19800101", i);
        client
            .register_household(authed(
                &token,
                RegisterHouseholdRequest {
                    grid_id: parent.clone(),
                    address: format!("新街村{i}号"),
                    head: Some(NewResident {
                        name: format!("居民{i}"),
                        id_number: id.clone(),
                        phone: format!("139{:08}", 12_345_000 + i),
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        ids.push(id);
    }
    let stored = stored_bytes(&mut sys).await;
    assert!(!stored.is_empty());
    assert!(contains(&stored, "居民7".as_bytes()), "the scan reads where the residents are");
    for (i, id) in ids.iter().enumerate() {
        let phone = format!("139{:08}", 12_345_000 + i);
        for secret in [id.as_str(), &id[..17], phone.as_str()] {
            assert!(!contains(&stored, secret.as_bytes()), "a plaintext number is stored");
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Everything identity stored: embedded, the bytes of its SQLite files (database and WAL) after a
/// clean stop; on PostgreSQL, every row of every table of its schema as text.
async fn stored_bytes(sys: &mut TestSystem) -> Vec<u8> {
    if common::distributed() {
        let db = sys.database(ServiceName::Identity).await;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        let mut out = Vec::new();
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT CAST(row_to_json(t) AS TEXT) FROM \"{table}\" t"))
                    .fetch_all(db.pool())
                    .await
                    .unwrap();
            for row in rows {
                out.extend_from_slice(row.as_bytes());
            }
        }
        sys.stop().await;
        out
    } else {
        sys.stop().await;
        common::bytes_of_files_in(&sys.data_dir)
    }
}

/// Services in other processes verify tokens with identity's keys fetched over gRPC, and follow a
/// key rotation without a restart.
#[tokio::test]
async fn a_remote_verifier_accepts_identitys_tokens_and_follows_rotation() {
    // Rotation needs an admin at the deployment's root: a system of the test's own.
    let sys = TestSystem::start_private(false).await;
    let verifier = jiaxin_kit::auth::Verifier::new(jiaxin::peers::RemoteKeySource::connect(&sys.addr(), None).unwrap());
    let token = sys.admin_token().await;
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.roles, [Role::CountyAdmin]);

    let mut client = sys.identity().await;
    let rotated =
        client.rotate_signing_key(authed(&token, jiaxin_proto::identity::RotateSigningKeyRequest {})).await.unwrap();
    let new_token = sys.admin_token().await;
    let header: serde_json::Value =
        serde_json::from_slice(&B64.decode(new_token.split('.').next().unwrap()).unwrap()).unwrap();
    let rotated_kid = rotated.into_inner().key_id;
    assert_eq!(header["kid"], rotated_kid.as_str(), "new tokens are signed with the new key");
    let old_header: serde_json::Value =
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_ne!(old_header["kid"], rotated_kid.as_str());
    // The new key id is unknown to the verifier's cache: it refreshes from identity (at most every
    // few seconds), and the old token stays valid.
    verifier.invalidate().await;
    assert_eq!(verifier.verify(&new_token).await.unwrap().sub, claims.sub);
    assert_eq!(verifier.verify(&token).await.unwrap().sub, claims.sub);
}
