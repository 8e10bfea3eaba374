//! Authentication and scope, shared by every service.
//!
//! Identity signs short-lived access tokens (JWS compact form, EdDSA over Ed25519, with a key id
//! so keys can rotate). Every service verifies them itself with identity's published public keys
//! ([`Verifier`]), through one tower layer ([`AuthLayer`]) in front of all its RPCs. Handlers then
//! read the [`Caller`] and check roles and org scope with its helpers.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use async_trait::async_trait;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

pub const ISSUER: &str = "jiaxin-identity";
const ALGORITHM: &str = "EdDSA";
/// Clock skew tolerated between the signer and a verifier.
const LEEWAY_SECS: i64 = 30;
/// An unknown key id triggers at most one key refresh per this interval, so garbage tokens
/// cannot make a service hammer identity.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// Roles an account can hold. Names are stable: they travel in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    CountyAdmin,
    TownAdmin,
    VillageCadre,
    GridWorker,
    PropertyManager,
    Volunteer,
    CouncilMember,
    Resident,
    Agency,
    BankOfficer,
    Province,
    Auditor,
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Account id.
    pub sub: String,
    pub roles: Vec<Role>,
    /// The org node the account acts inside (its whole subtree).
    pub org: String,
    /// For resident accounts: the resident id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// The authenticated caller of an RPC, put into the request extensions by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<Claims>);

impl Caller {
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Caller, tonic::Status> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| tonic::Status::unauthenticated("需要登录 / authentication required"))
    }

    pub fn account_id(&self) -> &str {
        &self.0.sub
    }

    pub fn scope(&self) -> &str {
        &self.0.org
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.0.roles.contains(&role)
    }

    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has_role(*r))
    }

    /// Fails with PERMISSION_DENIED unless the caller holds one of `roles`. Checked before any
    /// lookup, so it reveals nothing about objects.
    pub fn require_any_role(&self, roles: &[Role]) -> Result<(), tonic::Status> {
        if self.has_any_role(roles) {
            Ok(())
        } else {
            Err(tonic::Status::permission_denied("无权执行此操作 / not permitted for this role"))
        }
    }

    /// Whether an object whose org path (ids from the root down to the object's node) is `path`
    /// lies inside the caller's scope. The caller's node on the path means the object is in its
    /// subtree; this needs no tree walk and follows moves of whole subtrees.
    pub fn covers<S: AsRef<str>>(&self, path: &[S]) -> bool {
        path.iter().any(|id| id.as_ref() == self.0.org)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token algorithm is not accepted")]
    Algorithm,
    #[error("token key is unknown")]
    UnknownKey,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is wrong")]
    Issuer,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Signs tokens with one key. Held only by identity.
pub struct TokenSigner {
    key_id: String,
    key: SigningKey,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl TokenSigner {
    pub fn new(key_id: impl Into<String>, key: SigningKey) -> Self {
        Self { key_id: key_id.into(), key }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, serde_json::Error> {
        let header = Header { alg: ALGORITHM.to_owned(), typ: Some("JWT".to_owned()), kid: Some(self.key_id.clone()) };
        let signing_input =
            format!("{}.{}", B64.encode(serde_json::to_vec(&header)?), B64.encode(serde_json::to_vec(claims)?));
        let signature = self.key.sign(signing_input.as_bytes());
        Ok(format!("{signing_input}.{}", B64.encode(signature.to_bytes())))
    }
}

/// Where a verifier gets the public keys from: identity's store in-process, or its
/// `GetPublicKeys` RPC from another process.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    async fn public_keys(&self) -> Result<Vec<(String, [u8; 32])>, String>;
}

/// Verifies tokens against the public keys of a [`KeySource`], cached by key id.
pub struct Verifier {
    keys: RwLock<HashMap<String, VerifyingKey>>,
    source: Arc<dyn KeySource>,
    last_refresh: Mutex<Option<Instant>>,
}

impl Verifier {
    pub fn new(source: Arc<dyn KeySource>) -> Self {
        Self { keys: RwLock::new(HashMap::new()), source, last_refresh: Mutex::new(None) }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, crate::time::now_secs()).await
    }

    pub async fn verify_at(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(h)?;
        // Only EdDSA: this refuses `none` and every algorithm-confusion trick outright.
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.key(&kid).await?;
        let signature_bytes = B64.decode(s).map_err(|_| TokenError::Malformed)?;
        let signature = Signature::from_slice(&signature_bytes).map_err(|_| TokenError::Malformed)?;
        key.verify(format!("{h}.{p}").as_bytes(), &signature).map_err(|_| TokenError::Signature)?;
        let claims: Claims = decode_json(p)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer);
        }
        if claims.exp + LEEWAY_SECS <= now {
            return Err(TokenError::Expired);
        }
        if claims.iat - LEEWAY_SECS > now {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    async fn key(&self, kid: &str) -> Result<VerifyingKey, TokenError> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(*key);
        }
        self.refresh().await;
        self.keys.read().await.get(kid).copied().ok_or(TokenError::UnknownKey)
    }

    /// Reloads the key set, at most once per [`REFRESH_INTERVAL`].
    pub async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        match self.source.public_keys().await {
            Ok(list) => {
                let keys = list
                    .into_iter()
                    .filter_map(|(kid, bytes)| VerifyingKey::from_bytes(&bytes).ok().map(|k| (kid, k)))
                    .collect();
                *self.keys.write().await = keys;
            }
            Err(error) => tracing::warn!(%error, "cannot load token public keys"),
        }
    }

    /// Forgets the refresh time so the next unknown key id reloads at once (after a rotation).
    pub async fn invalidate(&self) {
        *self.last_refresh.lock().await = None;
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = B64.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Tower layer that authenticates every RPC except the public ones.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    public_methods: Arc<HashSet<String>>,
}

/// Services every caller may use without a token: health and reflection.
const PUBLIC_SERVICES: &[&str] = &["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/"];

impl AuthLayer {
    /// `public_methods` are full gRPC paths (`/pkg.Service/Method`) callable without a token.
    pub fn new(verifier: Arc<Verifier>, public_methods: impl IntoIterator<Item = String>) -> Self {
        Self { verifier, public_methods: Arc::new(public_methods.into_iter().collect()) }
    }

    fn is_public(&self, path: &str) -> bool {
        self.public_methods.contains(path) || PUBLIC_SERVICES.iter().any(|p| path.starts_with(p))
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, ReqBody> tower_service::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The ready clone goes to this request; the fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            if layer.is_public(request.uri().path()) {
                return inner.call(request).await;
            }
            let token = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let Some(token) = token else {
                return Ok(unauthenticated("缺少访问令牌 / missing bearer token"));
            };
            match layer.verifier.verify(&token).await {
                Ok(claims) => {
                    request.extensions_mut().insert(Caller(Arc::new(claims)));
                    inner.call(request).await
                }
                Err(error) => {
                    tracing::debug!(%error, "token rejected");
                    metrics::counter!("jiaxin_auth_rejected_total", "reason" => error.to_string()).increment(1);
                    Ok(unauthenticated("访问令牌无效或已过期 / invalid or expired token"))
                }
            }
        })
    }
}

fn unauthenticated(message: &str) -> http::Response<tonic::body::Body> {
    tonic::Status::unauthenticated(message).into_http()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(String, [u8; 32])>);

    #[async_trait]
    impl KeySource for Fixed {
        async fn public_keys(&self) -> Result<Vec<(String, [u8; 32])>, String> {
            Ok(self.0.clone())
        }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn claims(iat: i64, exp: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            sub: "acc-1".into(),
            roles: vec![Role::GridWorker],
            org: "grid-1".into(),
            rid: None,
            iat,
            exp,
            jti: "j".into(),
        }
    }

    fn verifier(keys: &[(&str, &SigningKey)]) -> Verifier {
        Verifier::new(Arc::new(Fixed(
            keys.iter().map(|(kid, k)| ((*kid).to_owned(), k.verifying_key().to_bytes())).collect(),
        )))
    }

    #[tokio::test]
    async fn accepts_a_good_token_and_rejects_every_forgery() {
        let k1 = key(1);
        let k2 = key(2);
        let v = verifier(&[("k1", &k1)]);
        let good = TokenSigner::new("k1", k1.clone()).sign(&claims(1000, 1900)).unwrap();
        assert_eq!(v.verify_at(&good, 1500).await.unwrap().sub, "acc-1");

        // expired
        assert_eq!(v.verify_at(&good, 1900 + LEEWAY_SECS).await, Err(TokenError::Expired));
        // signed by a key that is not published, under a published key id
        let wrong_key = TokenSigner::new("k1", k2.clone()).sign(&claims(1000, 1900)).unwrap();
        assert_eq!(v.verify_at(&wrong_key, 1500).await, Err(TokenError::Signature));
        // unknown key id
        let unknown = TokenSigner::new("k9", k2).sign(&claims(1000, 1900)).unwrap();
        assert_eq!(v.verify_at(&unknown, 1500).await, Err(TokenError::UnknownKey));
        // tampered claims: swap the payload for one with more roles
        let mut forged = claims(1000, 1900);
        forged.roles = vec![Role::CountyAdmin];
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&forged).unwrap()), parts[2]);
        assert_eq!(v.verify_at(&tampered, 1500).await, Err(TokenError::Signature));
        // alg: none
        let none_header = B64.encode(br#"{"alg":"none","kid":"k1"}"#);
        let none = format!("{none_header}.{}.", parts[1]);
        assert_eq!(v.verify_at(&none, 1500).await, Err(TokenError::Algorithm));
        // garbage
        assert_eq!(v.verify_at("abc", 1500).await, Err(TokenError::Malformed));
    }

    #[tokio::test]
    async fn old_keys_keep_verifying_after_rotation() {
        let k1 = key(1);
        let k2 = key(2);
        let v = verifier(&[("k1", &k1), ("k2", &k2)]);
        for (kid, k) in [("k1", &k1), ("k2", &k2)] {
            let token = TokenSigner::new(kid, k.clone()).sign(&claims(1000, 1900)).unwrap();
            assert!(v.verify_at(&token, 1500).await.is_ok(), "{kid}");
        }
    }

    #[test]
    fn scope_is_the_callers_node_on_the_objects_path() {
        let caller = Caller(Arc::new(claims(0, 1)));
        assert!(caller.covers(&["county", "town", "village", "grid-1"]));
        assert!(!caller.covers(&["county", "town", "village", "grid-2"]));
    }
}
