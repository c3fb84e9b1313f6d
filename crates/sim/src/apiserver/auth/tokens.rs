//! Bearer tokens and whom they stand for.
//!
//! Fixed tokens (the admin's, and those added with `ApiServer::add_token`) stand for an identity
//! for as long as the server runs. Tokens minted by TokenRequest are bound to their ServiceAccount,
//! as the real bound tokens are: they stop working when it is deleted (even if one of the same name
//! is created again, since its uid differs) or when they expire.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;

use super::identity::Identity;
use crate::apiserver::store::Store;

/// Where ServiceAccounts are stored.
const SERVICE_ACCOUNTS: &str = "/serviceaccounts";

enum Credential {
    Fixed(Arc<Identity>),
    ServiceAccount {
        namespace: String,
        name: String,
        uid: String,
        expires: DateTime<Utc>,
    },
}

/// The tokens one API server accepts.
#[derive(Default)]
pub struct Tokens {
    by_token: RwLock<HashMap<String, Credential>>,
}

impl Tokens {
    /// Accepts `token` for `identity` from now on.
    pub fn add(&self, token: String, identity: Identity) {
        self.by_token
            .write()
            .insert(token, Credential::Fixed(Arc::new(identity)));
    }

    /// Mints a token for the ServiceAccount `namespace/name` with this `uid`, valid until
    /// `expires`. Tokens that have expired are forgotten here, so the table stays as small as the
    /// set of live tokens.
    pub fn issue(&self, namespace: &str, name: &str, uid: &str, expires: DateTime<Utc>) -> String {
        let token = format!("sa.{}", uuid::Uuid::new_v4().simple());
        let now = Utc::now();
        let mut tokens = self.by_token.write();
        tokens.retain(
            |_, c| !matches!(c, Credential::ServiceAccount { expires, .. } if *expires <= now),
        );
        tokens.insert(
            token.clone(),
            Credential::ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                uid: uid.to_owned(),
                expires,
            },
        );
        token
    }

    /// Whom `token` stands for now, if anyone.
    pub fn authenticate(&self, store: &Store, token: &str) -> Option<Identity> {
        let tokens = self.by_token.read();
        match tokens.get(token)? {
            Credential::Fixed(identity) => Some(identity.as_ref().clone()),
            Credential::ServiceAccount {
                namespace,
                name,
                uid,
                expires,
            } => {
                let account = store.get(SERVICE_ACCOUNTS, namespace, name)?;
                (*expires > Utc::now() && account["metadata"]["uid"].as_str() == Some(uid))
                    .then(|| Identity::service_account(namespace, name, uid))
            }
        }
    }
}
