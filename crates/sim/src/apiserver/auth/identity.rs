//! Who made a request: a user name and groups, as the real authenticators report them.

/// The group whose members every authoriser lets through (`cluster-admin` is bound to it as well).
pub const MASTERS: &str = "system:masters";
/// The group of every authenticated request.
pub const AUTHENTICATED: &str = "system:authenticated";

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// The ServiceAccount's uid for its tokens; empty for the others.
    pub uid: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The holder of the admin token (and of tokens added with `ApiServer::add_token`), as the
    /// client certificate kubeadm writes into `admin.conf` is.
    pub fn admin() -> Identity {
        Identity {
            user: "system:admin".into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// A request on the plain-HTTP listener without a token: the simulator's own controllers. It is
    /// privileged, as the real API server's insecure port was.
    pub fn unsecured() -> Identity {
        Identity {
            user: "system:unsecured".into(),
            uid: String::new(),
            groups: vec![MASTERS.into(), AUTHENTICATED.into()],
        }
    }

    /// A ServiceAccount, with the groups the service account authenticator gives it.
    pub fn service_account(namespace: &str, name: &str, uid: &str) -> Identity {
        Identity {
            user: service_account_user(namespace, name),
            uid: uid.to_owned(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                AUTHENTICATED.into(),
            ],
        }
    }

    /// Whether the authoriser lets every request of this identity through.
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// The user name of a ServiceAccount.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}
