//! Accounts, login and tokens: argon2id passwords, lockout after repeated failures, short-lived
//! signed access tokens, rotating refresh tokens stored only as hashes, and the first-run
//! bootstrap of the deployment's root node and admin.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jiaxin_kit::{
    auth::{Caller, Claims, ISSUER, Role},
    error::Violations,
    page::Page,
    time::{now_micros, to_timestamp},
};
use jiaxin_proto::identity::{
    Account, AccountCreated, AccountDisabled, ChangePasswordRequest, CreateAccountRequest, CreateAccountResponse,
    ListAccountsRequest, ListAccountsResponse, LoginRequest, LoginResponse, OrgNodeCreated, OrgNodeKind, PublicKey,
    RefreshTokenResponse,
};
use rand::{RngCore, rngs::OsRng};
use sha2::{Digest, Sha256};

use super::{Identity, earlier_result, is_unique_violation, new_id, org::org_proto, remember_result, request_hash};
use crate::{
    convert::{role_from_kit, role_to_kit, roles_from_column, roles_to_column},
    domain::{access, org},
    error::{IdentityError, Result},
    store::{self, AccountRow, OrgRow},
};

const ACCOUNT: &str = "账户";
const MIN_PASSWORD_CHARS: usize = 10;

/// The first run's root node and admin account.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub org_name: String,
    pub org_kind: OrgNodeKind,
    pub org_code: String,
    pub admin_username: String,
    /// Generated and returned once when not given.
    pub admin_password: Option<String>,
}

/// Tokens issued by a login or a refresh.
pub struct Tokens {
    pub access_token: String,
    pub access_expires_at: i64,
    pub refresh_token: String,
    pub refresh_expires_at: i64,
}

fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Internal(format!("password hashing failed: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Argon2 takes tens of milliseconds of CPU on purpose: keep it off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| IdentityError::Internal(e.to_string()))
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    B64.encode(buf)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(crate) fn account_proto(row: &AccountRow) -> Account {
    Account {
        id: row.id.clone(),
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        roles: roles_from_column(&row.roles).into_iter().map(|r| role_from_kit(r) as i32).collect(),
        org_node_id: row.org_node_id.clone(),
        resident_id: row.resident_id.clone().unwrap_or_default(),
        service_account: row.service_account == 1,
        disabled: row.disabled == 1,
        created_at: Some(to_timestamp(row.created_at)),
    }
}

fn validate_password(v: &mut Violations, field: &str, password: &str) {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        v.add(field, format!("至少{MIN_PASSWORD_CHARS}个字符 / at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > 256 {
        v.add(field, "过长 / too long");
    }
}

impl Identity {
    /// Creates the root node and the admin account when the database is empty. Returns the
    /// generated password (to print once) when one was generated.
    pub async fn bootstrap(&self, bootstrap: &Bootstrap) -> Result<Option<String>> {
        let mut tx = self.db.begin().await?;
        if store::count_accounts(&mut *tx).await? > 0 || store::count_org_nodes(&mut *tx).await? > 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        if !org::may_contain(None, bootstrap.org_kind) {
            return Err(IdentityError::invalid(
                "bootstrap_org_kind",
                "根节点应为省、市或县 / the root must be a province, city or county",
            ));
        }
        let id = new_id();
        let root = OrgRow {
            path: org::child_path(None, &id),
            id: id.clone(),
            parent_id: None,
            kind: bootstrap.org_kind as i64,
            name: bootstrap.org_name.clone(),
            code: bootstrap.org_code.clone(),
            created_at: now_micros(),
        };
        store::insert_org_node(&mut *tx, &root).await?;
        self.outbox.write(&mut tx, &root.id, &OrgNodeCreated { org_node: Some(org_proto(&root)) }).await?;
        let (password, generated) = match &bootstrap.admin_password {
            Some(p) => (p.clone(), None),
            None => {
                let p = random_token(12);
                (p.clone(), Some(p))
            }
        };
        let hash = blocking(move || hash_password(&password)).await??;
        let roles =
            if bootstrap.org_kind == OrgNodeKind::Province { vec![Role::Province] } else { vec![Role::CountyAdmin] };
        let admin = AccountRow {
            id: new_id(),
            username: bootstrap.admin_username.clone(),
            display_name: "系统管理员".into(),
            roles: roles_to_column(&roles),
            org_node_id: root.id.clone(),
            resident_id: None,
            service_account: 0,
            password_hash: hash,
            disabled: 0,
            failed_logins: 0,
            locked_until: None,
            created_at: now_micros(),
        };
        store::insert_account(&mut *tx, &admin).await?;
        self.account_created_event(&mut tx, &admin).await?;
        self.commit(tx).await?;
        tracing::info!(org_node_id = %root.id, account_id = %admin.id, "bootstrapped root org node and admin account");
        Ok(generated)
    }

    async fn account_created_event(&self, tx: &mut jiaxin_kit::storage::Tx, row: &AccountRow) -> Result<()> {
        let event = AccountCreated {
            account_id: row.id.clone(),
            roles: account_proto(row).roles,
            org_node_id: row.org_node_id.clone(),
            service_account: row.service_account == 1,
        };
        self.outbox.write(tx, &row.id, &event).await?;
        Ok(())
    }

    pub async fn login(&self, req: LoginRequest) -> Result<LoginResponse> {
        let mut v = Violations::new();
        v.require("username", &req.username);
        v.require("password", &req.password);
        v.into_result()?;
        let account = store::account_by_username(self.db.pool(), req.username.trim()).await?;
        let Some(account) = account else {
            // Spend the same time as a real check, so response times do not reveal which
            // usernames exist.
            let password = req.password.clone();
            blocking(move || verify_password(&password, DUMMY_HASH)).await?;
            return Err(IdentityError::LoginFailed);
        };
        let now = now_micros();
        if account.disabled == 1 || account.locked_until.is_some_and(|until| until > now) {
            return Err(IdentityError::LoginFailed);
        }
        let (password, hash) = (req.password.clone(), account.password_hash.clone());
        if !blocking(move || verify_password(&password, &hash)).await? {
            let lock = (account.failed_logins + 1 >= self.settings.max_failed_logins)
                .then(|| now + self.settings.lockout_secs * 1_000_000);
            store::record_login_failure(self.db.pool(), &account.id, lock).await?;
            if lock.is_some() {
                tracing::warn!(account_id = %account.id, "account locked after repeated failed logins");
            }
            return Err(IdentityError::LoginFailed);
        }
        store::record_login_success(self.db.pool(), &account.id).await?;
        let tokens = self.issue_tokens(&account).await?;
        Ok(LoginResponse {
            access_token: tokens.access_token,
            access_token_expires_at: Some(to_timestamp(tokens.access_expires_at)),
            refresh_token: tokens.refresh_token,
            refresh_token_expires_at: Some(to_timestamp(tokens.refresh_expires_at)),
            account: Some(account_proto(&account)),
        })
    }

    async fn issue_tokens(&self, account: &AccountRow) -> Result<Tokens> {
        let now = jiaxin_kit::time::now_secs();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: account.id.clone(),
            roles: roles_from_column(&account.roles),
            org: account.org_node_id.clone(),
            rid: account.resident_id.clone(),
            iat: now,
            exp: now + self.settings.access_token_ttl_secs,
            jti: new_id(),
        };
        let signer = self.keys.signer().await?;
        let access_token = signer.sign(&claims).map_err(|e| IdentityError::Internal(e.to_string()))?;
        let refresh_token = random_token(32);
        let refresh_expires_at = now_micros() + self.settings.refresh_token_ttl_secs * 1_000_000;
        store::insert_refresh_token(self.db.pool(), &token_hash(&refresh_token), &account.id, refresh_expires_at)
            .await?;
        Ok(Tokens { access_token, access_expires_at: claims.exp * 1_000_000, refresh_token, refresh_expires_at })
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<RefreshTokenResponse> {
        if refresh_token.is_empty() {
            return Err(IdentityError::invalid("refresh_token", "必填 / required"));
        }
        let account_id = store::spend_refresh_token(self.db.pool(), &token_hash(refresh_token))
            .await?
            .ok_or(IdentityError::BadRefreshToken)?;
        let account = store::account(self.db.pool(), &account_id).await?.ok_or(IdentityError::BadRefreshToken)?;
        if account.disabled == 1 {
            return Err(IdentityError::BadRefreshToken);
        }
        let tokens = self.issue_tokens(&account).await?;
        Ok(RefreshTokenResponse {
            access_token: tokens.access_token,
            access_token_expires_at: Some(to_timestamp(tokens.access_expires_at)),
            refresh_token: tokens.refresh_token,
            refresh_token_expires_at: Some(to_timestamp(tokens.refresh_expires_at)),
        })
    }

    pub async fn logout(&self, refresh_token: &str) -> Result<()> {
        if refresh_token.is_empty() {
            return Err(IdentityError::invalid("refresh_token", "必填 / required"));
        }
        store::spend_refresh_token(self.db.pool(), &token_hash(refresh_token)).await?;
        Ok(())
    }

    pub async fn public_keys(&self) -> Result<Vec<PublicKey>> {
        Ok(self
            .keys
            .public_keys()
            .await?
            .into_iter()
            .map(|k| PublicKey {
                key_id: k.kid,
                algorithm: "EdDSA".into(),
                public_key: k.public_key,
                created_at: Some(to_timestamp(k.created_at)),
                active: k.active == 1,
            })
            .collect())
    }

    pub async fn rotate_signing_key(&self, caller: &Caller) -> Result<String> {
        caller.require_any_role(access::KEY_ADMINS).map_err(|_| IdentityError::PermissionDenied)?;
        let scope = store::org_node(self.db.pool(), caller.scope()).await?;
        if scope.is_none_or(|node| node.parent_id.is_some()) {
            return Err(IdentityError::PermissionDenied);
        }
        self.keys.rotate().await
    }

    pub async fn current_account(&self, caller: &Caller) -> Result<Account> {
        let row = store::account(self.db.pool(), caller.account_id()).await?.ok_or(IdentityError::NotFound(ACCOUNT))?;
        Ok(account_proto(&row))
    }

    pub async fn create_account(&self, caller: &Caller, req: CreateAccountRequest) -> Result<CreateAccountResponse> {
        caller.require_any_role(access::ACCOUNT_ADMINS).map_err(|_| IdentityError::PermissionDenied)?;
        let mut v = Violations::new();
        let username = req.username.trim();
        if username.len() < 3
            || username.len() > 64
            || !username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '@'))
        {
            v.add("username", "3–64个字母、数字或 _ . - @ / 3–64 letters, digits or _ . - @");
        }
        v.require("display_name", &req.display_name);
        v.require("org_node_id", &req.org_node_id);
        let mut roles = Vec::new();
        if req.roles.is_empty() {
            v.add("roles", "至少一个角色 / at least one role");
        }
        for value in &req.roles {
            match jiaxin_proto::identity::Role::try_from(*value).ok().and_then(role_to_kit) {
                Some(role) if access::may_grant(&caller.0.roles, role) => roles.push(role),
                Some(_) => v.add("roles", "不能授予高于自身的角色 / cannot grant this role"),
                None => v.add("roles", "未知角色 / unknown role"),
            }
        }
        roles.sort_by_key(|r| role_from_kit(*r) as i32);
        roles.dedup();
        if req.service_account {
            if !req.password.is_empty() {
                v.add("password", "服务账户不设密码,使用生成的密钥 / service accounts get a generated secret");
            }
        } else {
            validate_password(&mut v, "password", &req.password);
        }
        if roles.contains(&Role::Resident) && req.resident_id.is_empty() {
            v.add("resident_id", "居民账户须关联居民 / required for resident accounts");
        }
        v.into_result()?;

        let secret = req.service_account.then(|| random_token(24));
        let password = secret.clone().unwrap_or_else(|| req.password.clone());
        let password_hash = blocking(move || hash_password(&password)).await??;

        let hash = request_hash(caller, &req);
        let mut tx = self.db.begin().await?;
        if let Some(id) = earlier_result(&mut tx, "create_account", &req.request_id, &hash).await? {
            let row = store::account(&mut *tx, &id).await?.ok_or(IdentityError::NotFound(ACCOUNT))?;
            // The secret was shown once, with the first answer; a retry does not see it again.
            return Ok(CreateAccountResponse { account: Some(account_proto(&row)), generated_secret: String::new() });
        }
        let node = self.visible_node(&mut tx, caller, &req.org_node_id, "组织节点").await?;
        if !req.resident_id.is_empty() {
            let path = store::resident_scope_path(&mut *tx, &req.resident_id).await?.unwrap_or_default();
            if store::resident(&mut *tx, &req.resident_id).await?.is_none() || !caller.covers(&org::path_ids(&path)) {
                return Err(IdentityError::NotFound("居民"));
            }
        }
        let row = AccountRow {
            id: new_id(),
            username: username.to_owned(),
            display_name: req.display_name.trim().to_owned(),
            roles: roles_to_column(&roles),
            org_node_id: node.id.clone(),
            resident_id: (!req.resident_id.is_empty()).then(|| req.resident_id.clone()),
            service_account: i64::from(req.service_account),
            password_hash,
            disabled: 0,
            failed_logins: 0,
            locked_until: None,
            created_at: now_micros(),
        };
        store::insert_account(&mut *tx, &row).await.map_err(|e| {
            if is_unique_violation(&e) {
                IdentityError::AlreadyExists("用户名已被使用 / username taken".into())
            } else {
                e.into()
            }
        })?;
        self.account_created_event(&mut tx, &row).await?;
        remember_result(&mut tx, "create_account", &req.request_id, &hash, &row.id).await?;
        self.commit(tx).await?;
        Ok(CreateAccountResponse { account: Some(account_proto(&row)), generated_secret: secret.unwrap_or_default() })
    }

    /// An account the caller may see: their own, or one in their scope if they administer accounts.
    async fn visible_account(&self, caller: &Caller, id: &str) -> Result<AccountRow> {
        let row = store::account(self.db.pool(), id).await?.ok_or(IdentityError::NotFound(ACCOUNT))?;
        if row.id == caller.account_id() {
            return Ok(row);
        }
        let node = store::org_node(self.db.pool(), &row.org_node_id).await?;
        let in_scope = node.is_some_and(|n| caller.covers(&org::path_ids(&n.path)));
        if in_scope && caller.has_any_role(&[access::ACCOUNT_ADMINS, &[Role::Auditor]].concat()) {
            Ok(row)
        } else {
            Err(IdentityError::NotFound(ACCOUNT))
        }
    }

    pub async fn get_account(&self, caller: &Caller, id: &str) -> Result<Account> {
        Ok(account_proto(&self.visible_account(caller, id).await?))
    }

    pub async fn list_accounts(&self, caller: &Caller, req: ListAccountsRequest) -> Result<ListAccountsResponse> {
        caller
            .require_any_role(&[access::ACCOUNT_ADMINS, &[Role::Auditor]].concat())
            .map_err(|_| IdentityError::PermissionDenied)?;
        let page = Page::parse(req.page_size, &req.page_token)?;
        let node_id = if req.org_node_id.is_empty() { caller.scope().to_owned() } else { req.org_node_id.clone() };
        let mut tx = self.db.begin_read().await?;
        let node = self.visible_node(&mut tx, caller, &node_id, "组织节点").await?;
        let mut rows = store::accounts_in(&mut *tx, &node.path, &page).await?;
        let next_page_token = page.finish(&mut rows, |r| r.id.clone());
        Ok(ListAccountsResponse { accounts: rows.iter().map(account_proto).collect(), next_page_token })
    }

    pub async fn disable_account(&self, caller: &Caller, id: &str) -> Result<Account> {
        caller.require_any_role(access::ACCOUNT_ADMINS).map_err(|_| IdentityError::PermissionDenied)?;
        if id.is_empty() {
            return Err(IdentityError::invalid("id", "必填 / required"));
        }
        if id == caller.account_id() {
            return Err(IdentityError::precondition("不能停用自己的账户 / cannot disable your own account"));
        }
        let mut row = self.visible_account(caller, id).await?;
        let mut tx = self.db.begin().await?;
        store::disable_account(&mut tx, &row.id).await?;
        self.outbox.write(&mut tx, &row.id, &AccountDisabled { account_id: row.id.clone() }).await?;
        self.commit(tx).await?;
        row.disabled = 1;
        Ok(account_proto(&row))
    }

    pub async fn change_password(&self, caller: &Caller, req: ChangePasswordRequest) -> Result<()> {
        let mut v = Violations::new();
        v.require("current_password", &req.current_password);
        validate_password(&mut v, "new_password", &req.new_password);
        if req.new_password == req.current_password {
            v.add("new_password", "新密码不能与原密码相同 / must differ from the current password");
        }
        v.into_result()?;
        let row = store::account(self.db.pool(), caller.account_id()).await?.ok_or(IdentityError::NotFound(ACCOUNT))?;
        let (current, hash) = (req.current_password.clone(), row.password_hash.clone());
        if !blocking(move || verify_password(&current, &hash)).await? {
            return Err(IdentityError::invalid("current_password", "原密码不正确 / incorrect"));
        }
        let new = req.new_password.clone();
        let new_hash = blocking(move || hash_password(&new)).await??;
        store::set_password(self.db.pool(), &row.id, &new_hash).await?;
        Ok(())
    }
}

/// An argon2id hash of a random string, verified against when a username does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2uvdmBfaq8ZpnMZV4WiA5XpFiRUBTW8mcs+JlJqZcr4";
