//! Roles, permissions, and [`MATRIX`], the one table saying which role may do what.
//!
//! Least privilege: an admin may do everything; an operator runs the appliance but
//! manages neither users nor other people's tokens; support only obtains anonymized
//! copies (and sees which sources exist); an auditor only reads. Every role may
//! manage its own API tokens. Admins and operators must use TOTP.
//!
//! A change to [`MATRIX`] must be made again, on purpose, in the test that spells it
//! out row by row; [`markdown_matrix`] renders it for the README.

use std::fmt;
use std::str::FromStr;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Operator,
    Support,
    Auditor,
}

impl Role {
    /// Every role, in the order of [`MATRIX`]'s columns.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Support, Role::Auditor];

    /// The name used in the API, the configuration and the state store.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Support => "support",
            Role::Auditor => "auditor",
        }
    }

    /// Whether logging in with this role needs a TOTP code besides the password.
    pub const fn requires_totp(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }

    /// Whether this role has `permission`, according to [`MATRIX`].
    pub fn can(self, permission: Permission) -> bool {
        MATRIX
            .iter()
            .find(|(row, _)| *row == permission)
            .and_then(|(_, allowed)| allowed.get(self.column()).copied())
            .unwrap_or(false)
    }

    /// The permissions of this role, in [`Permission::ALL`] order.
    pub fn permissions(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |&p| self.can(p))
    }

    /// This role's column in [`MATRIX`].
    const fn column(self) -> usize {
        match self {
            Role::Admin => 0,
            Role::Operator => 1,
            Role::Support => 2,
            Role::Auditor => 3,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {given:?}: expected one of admin, operator, support, auditor")]
pub struct UnknownRole {
    pub given: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    /// Parses a role name, ignoring ASCII case and surrounding spaces.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim();
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownRole {
                given: text.to_owned(),
            })
    }
}

/// A capability of the API. New variants go at the end, into [`Permission::ALL`]
/// and into [`MATRIX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    ReadSources,
    ReadBackups,
    TriggerBackup,
    VerifyBackup,
    ReadJobs,
    CancelJob,
    Restore,
    TriggerDrill,
    ReadDrills,
    RequestAnonymizedCopy,
    DownloadAnonymizedCopy,
    ReadAudit,
    VerifyAudit,
    ManageUsers,
    ManageTokens,
    ManageAllTokens,
    RecordErasure,
    ReadErasures,
}

impl Permission {
    /// Every permission, in the order of [`MATRIX`]'s rows.
    pub const ALL: [Permission; 18] = [
        Permission::ReadSources,
        Permission::ReadBackups,
        Permission::TriggerBackup,
        Permission::VerifyBackup,
        Permission::ReadJobs,
        Permission::CancelJob,
        Permission::Restore,
        Permission::TriggerDrill,
        Permission::ReadDrills,
        Permission::RequestAnonymizedCopy,
        Permission::DownloadAnonymizedCopy,
        Permission::ReadAudit,
        Permission::VerifyAudit,
        Permission::ManageUsers,
        Permission::ManageTokens,
        Permission::ManageAllTokens,
        Permission::RecordErasure,
        Permission::ReadErasures,
    ];

    /// The snake_case name, as serialized.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::ReadSources => "read_sources",
            Permission::ReadBackups => "read_backups",
            Permission::TriggerBackup => "trigger_backup",
            Permission::VerifyBackup => "verify_backup",
            Permission::ReadJobs => "read_jobs",
            Permission::CancelJob => "cancel_job",
            Permission::Restore => "restore",
            Permission::TriggerDrill => "trigger_drill",
            Permission::ReadDrills => "read_drills",
            Permission::RequestAnonymizedCopy => "request_anonymized_copy",
            Permission::DownloadAnonymizedCopy => "download_anonymized_copy",
            Permission::ReadAudit => "read_audit",
            Permission::VerifyAudit => "verify_audit",
            Permission::ManageUsers => "manage_users",
            Permission::ManageTokens => "manage_tokens",
            Permission::ManageAllTokens => "manage_all_tokens",
            Permission::RecordErasure => "record_erasure",
            Permission::ReadErasures => "read_erasures",
        }
    }

    /// What the permission allows, for people.
    pub const fn description(self) -> &'static str {
        match self {
            Permission::ReadSources => "list sources: names, kinds and status (never credentials)",
            Permission::ReadBackups => "list backups and read their manifests (metadata, not data)",
            Permission::TriggerBackup => "start a backup now",
            Permission::VerifyBackup => "verify a stored backup (checksums, decryption)",
            Permission::ReadJobs => "list running and past jobs",
            Permission::CancelJob => "cancel a running job",
            Permission::Restore => "restore a backup into a database",
            Permission::TriggerDrill => "start a restore drill",
            Permission::ReadDrills => "read drill reports",
            Permission::RequestAnonymizedCopy => "request an anonymized copy of a database",
            Permission::DownloadAnonymizedCopy => "download an anonymized copy",
            Permission::ReadAudit => "read the audit log",
            Permission::VerifyAudit => "verify the audit log's integrity",
            Permission::ManageUsers => "create, disable and change the role of users",
            Permission::ManageTokens => "create, list and revoke one's own API tokens",
            Permission::ManageAllTokens => "list and revoke anyone's API tokens",
            Permission::RecordErasure => "record an erasure (right to be forgotten) request",
            Permission::ReadErasures => {
                "read the erasure ledger and which backups still hold a subject"
            }
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const Y: bool = true;
const N: bool = false;

/// Who may do what: one row per permission (in [`Permission::ALL`] order), one
/// column per role (in [`Role::ALL`] order). The only source of [`Role::can`].
#[rustfmt::skip]
pub const MATRIX: [(Permission, [bool; 4]); 18] = [
    //                                      admin operator support auditor
    (Permission::ReadSources,            [Y,    Y,       Y,      Y]),
    (Permission::ReadBackups,            [Y,    Y,       N,      Y]),
    (Permission::TriggerBackup,          [Y,    Y,       N,      N]),
    (Permission::VerifyBackup,           [Y,    Y,       N,      N]),
    (Permission::ReadJobs,               [Y,    Y,       N,      Y]),
    (Permission::CancelJob,              [Y,    Y,       N,      N]),
    (Permission::Restore,                [Y,    Y,       N,      N]),
    (Permission::TriggerDrill,           [Y,    Y,       N,      N]),
    (Permission::ReadDrills,             [Y,    Y,       N,      Y]),
    (Permission::RequestAnonymizedCopy,  [Y,    Y,       Y,      N]),
    (Permission::DownloadAnonymizedCopy, [Y,    Y,       Y,      N]),
    (Permission::ReadAudit,              [Y,    Y,       N,      Y]),
    (Permission::VerifyAudit,            [Y,    Y,       N,      Y]),
    (Permission::ManageUsers,            [Y,    N,       N,      N]),
    (Permission::ManageTokens,           [Y,    Y,       Y,      Y]),
    (Permission::ManageAllTokens,        [Y,    N,       N,      N]),
    (Permission::RecordErasure,          [Y,    Y,       N,      N]),
    (Permission::ReadErasures,           [Y,    Y,       N,      Y]),
];

/// [`MATRIX`] as a Markdown table, for the README.
pub fn markdown_matrix() -> String {
    let mut out = String::from("| permission | allows |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|---|");
    for _ in Role::ALL {
        out.push_str(":-:|");
    }
    out.push('\n');
    for permission in Permission::ALL {
        out.push_str(&format!(
            "| `{permission}` | {} |",
            permission.description()
        ));
        for role in Role::ALL {
            out.push_str(if role.can(permission) { " ✓ |" } else { " |" });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole matrix, spelled out: changing who may do what means changing this.
    const EXPECTED: &str = "\
read_sources             admin operator support auditor
read_backups             admin operator -       auditor
trigger_backup           admin operator -       -
verify_backup            admin operator -       -
read_jobs                admin operator -       auditor
cancel_job               admin operator -       -
restore                  admin operator -       -
trigger_drill            admin operator -       -
read_drills              admin operator -       auditor
request_anonymized_copy  admin operator support -
download_anonymized_copy admin operator support -
read_audit               admin operator -       auditor
verify_audit             admin operator -       auditor
manage_users             admin -        -       -
manage_tokens            admin operator support auditor
manage_all_tokens        admin -        -       -
record_erasure           admin operator -       -
read_erasures            admin operator -       auditor";

    fn render() -> Vec<String> {
        Permission::ALL
            .into_iter()
            .map(|permission| {
                let cells: Vec<String> = Role::ALL
                    .into_iter()
                    .map(|role| {
                        let cell = if role.can(permission) {
                            role.as_str()
                        } else {
                            "-"
                        };
                        format!("{cell:width$}", width = role.as_str().len())
                    })
                    .collect();
                format!("{:24} {}", permission.as_str(), cells.join(" "))
                    .trim_end()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn matrix_row_by_row() {
        let actual = render();
        let expected: Vec<&str> = EXPECTED.lines().collect();
        assert_eq!(actual.len(), expected.len(), "{}", actual.join("\n"));
        for (actual, expected) in actual.iter().zip(expected) {
            assert_eq!(actual, expected);
        }
    }

    #[test]
    fn matrix_rows_follow_permission_all() {
        for (index, (permission, _)) in MATRIX.iter().enumerate() {
            assert_eq!(Permission::ALL.get(index), Some(permission));
            assert_eq!(*permission as usize, index, "variants and ALL in one order");
        }
        for (index, role) in Role::ALL.into_iter().enumerate() {
            assert_eq!(role.column(), index);
        }
    }

    #[test]
    fn least_privilege() {
        assert!(Permission::ALL.into_iter().all(|p| Role::Admin.can(p)));
        for denied in [Permission::ManageUsers, Permission::ManageAllTokens] {
            assert!(!Role::Operator.can(denied));
        }
        let support: Vec<Permission> = Role::Support.permissions().collect();
        assert_eq!(
            support,
            [
                Permission::ReadSources,
                Permission::RequestAnonymizedCopy,
                Permission::DownloadAnonymizedCopy,
                Permission::ManageTokens,
            ]
        );
        for permission in Role::Auditor.permissions() {
            let name = permission.as_str();
            assert!(
                name.starts_with("read_")
                    || name.starts_with("verify_audit")
                    || name == "manage_tokens",
                "auditor may {name}"
            );
        }
        for role in Role::ALL {
            assert!(
                role.can(Permission::ManageTokens),
                "{role} manages its own tokens"
            );
        }
    }

    #[test]
    fn totp_for_admins_and_operators() {
        let with_totp: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|r| r.requires_totp())
            .collect();
        assert_eq!(with_totp, [Role::Admin, Role::Operator]);
    }

    #[test]
    fn names_parse_and_serialize() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(
                serde_json::to_string(&role).expect("json"),
                format!("\"{role}\"")
            );
            let back: Role = serde_json::from_str(&format!("\"{role}\"")).expect("json");
            assert_eq!(back, role);
        }
        assert_eq!(" Operator ".parse::<Role>(), Ok(Role::Operator));
        let error = "root".parse::<Role>().expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "unknown role \"root\": expected one of admin, operator, support, auditor"
        );
        assert!(serde_json::from_str::<Role>("\"Admin\"").is_err());
        for permission in Permission::ALL {
            assert_eq!(
                serde_json::to_string(&permission).expect("json"),
                format!("\"{}\"", permission.as_str())
            );
        }
    }

    #[test]
    fn markdown_has_a_row_per_permission() {
        let table = markdown_matrix();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + Permission::ALL.len());
        assert_eq!(
            lines.first().copied(),
            Some("| permission | allows | admin | operator | support | auditor |")
        );
        assert_eq!(
            lines.get(2).copied(),
            Some(
                "| `read_sources` | list sources: names, kinds and status (never credentials) | ✓ | ✓ | ✓ | ✓ |"
            )
        );
        assert!(lines.contains(
            &"| `manage_users` | create, disable and change the role of users | ✓ | | | |"
        ));
    }
}
