//! From a db user (an IAM role name or a full role ARN) to the role ARN to assume, and from
//! an identity's user name to an STS role session name.
//!
//! The rules follow the DocumentDB guide: a db user `teleport-docdb-user` is the IAM role
//! `arn:<partition>:iam::<account>:role/teleport-docdb-user`; a full ARN must be an IAM role
//! ARN in the database's partition (and account, when the account is known).

use std::fmt;

use crate::{Error, ResultCode};

/// The AWS partition a region belongs to (`aws`, `aws-cn`, `aws-us-gov`, and the isolated
/// partitions).
pub fn partition_for_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("eu-isoe-") {
        "aws-iso-e"
    } else if region.starts_with("us-isof-") {
        "aws-iso-f"
    } else {
        "aws"
    }
}

/// An IAM role ARN, checked: `arn:<partition>:iam::<12-digit account>:role/[<path>/]<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleArn {
    partition: String,
    account: String,
    /// Everything after `role/`: an optional path and the role name.
    path_and_name: String,
}

impl RoleArn {
    /// Parses and checks a role ARN; `what` names it in the error (e.g. "db user").
    pub fn parse(arn: &str, what: &str) -> Result<RoleArn, Error> {
        let refuse = |why: String| {
            Error::new(
                ResultCode::AwsInvalidRoleArn,
                format!("{what} `{arn}` is not a usable IAM role ARN: {why}"),
            )
        };
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(refuse(
                "expected arn:<partition>:iam::<account>:role/<name>".into(),
            ));
        }
        let (partition, service, region, account, resource) =
            (parts[1], parts[2], parts[3], parts[4], parts[5]);
        if partition.is_empty()
            || !partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-')
        {
            return Err(refuse(format!("`{partition}` is not an AWS partition")));
        }
        if service != "iam" {
            return Err(refuse(format!(
                "it names the service `{service}`; a db user must be an IAM role (service `iam`), not e.g. an STS assumed-role session"
            )));
        }
        if !region.is_empty() {
            return Err(refuse(format!(
                "IAM ARNs have no region, this one has `{region}`"
            )));
        }
        check_account(account).map_err(&refuse)?;
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            let kind = resource.split('/').next().unwrap_or(resource);
            return Err(refuse(format!(
                "it names an IAM `{kind}`, not a `role`; MONGODB-AWS db users are IAM roles"
            )));
        };
        let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
        check_role_name(name).map_err(&refuse)?;
        if path_and_name.len() > 512 + 64 {
            return Err(refuse("the role path is longer than IAM allows".into()));
        }
        let path = &path_and_name[..path_and_name.len() - name.len()];
        if !path.bytes().all(|b| (0x21..=0x7e).contains(&b)) || path.contains("//") {
            return Err(refuse(format!("the role path `/{path}` is not valid")));
        }
        Ok(RoleArn {
            partition: partition.to_owned(),
            account: account.to_owned(),
            path_and_name: path_and_name.to_owned(),
        })
    }

    /// The role `name` in `account` of `partition` (the name is checked).
    pub fn from_name(partition: &str, account: &str, name: &str) -> Result<RoleArn, Error> {
        check_role_name(name).map_err(|why| {
            Error::new(
                ResultCode::AwsInvalidRoleArn,
                format!("db user `{name}` is not an IAM role name: {why}"),
            )
        })?;
        check_account(account).map_err(|why| {
            Error::new(
                ResultCode::AwsInvalidRoleArn,
                format!("cannot build the role ARN for db user `{name}`: {why}"),
            )
        })?;
        Ok(RoleArn {
            partition: partition.to_owned(),
            account: account.to_owned(),
            path_and_name: name.to_owned(),
        })
    }

    pub fn partition(&self) -> &str {
        &self.partition
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// The role name (the last path segment).
    pub fn name(&self) -> &str {
        self.path_and_name
            .rsplit('/')
            .next()
            .unwrap_or(&self.path_and_name)
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:iam::{}:role/{}",
            self.partition, self.account, self.path_and_name
        )
    }
}

fn check_account(account: &str) -> Result<(), String> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(format!(
            "the account `{account}` is not a 12-digit AWS account id"
        ))
    }
}

/// IAM role names: 1–64 characters from `[A-Za-z0-9+=,.@_-]`.
fn check_role_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the role name is empty".into());
    }
    if name.len() > 64 {
        return Err(format!(
            "the role name is {} characters long; IAM allows at most 64",
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| !is_iam_name_char(*c)) {
        return Err(format!(
            "the role name contains `{}`; IAM role names use only letters, digits and +=,.@_-",
            bad.escape_default()
        ));
    }
    Ok(())
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// What a db user names, before the account is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbUserRole {
    /// A full ARN, already checked against the partition and the known account.
    Arn(RoleArn),
    /// A bare role name: the ARN needs an account (from config or GetCallerIdentity).
    Name(String),
}

/// Classifies and checks a db user. `known_account` is the account from the database's
/// `account_id` or its `assume_role_arn`; a full ARN in another account is refused.
pub fn classify_db_user(
    db_user: &str,
    partition: &str,
    known_account: Option<&str>,
) -> Result<DbUserRole, Error> {
    if db_user.starts_with("arn:") {
        let arn = RoleArn::parse(db_user, "db user")?;
        if arn.partition() != partition {
            return Err(Error::new(
                ResultCode::AwsInvalidRoleArn,
                format!(
                    "db user `{db_user}` is in partition `{}` but the database is in partition `{partition}`; use a role ARN of partition `{partition}` or the bare role name",
                    arn.partition()
                ),
            ));
        }
        if let Some(account) = known_account {
            if arn.account() != account {
                return Err(Error::new(
                    ResultCode::AwsInvalidRoleArn,
                    format!(
                        "db user `{db_user}` is in account {} but the database's AWS account is {account}; use a role of account {account} or the bare role name",
                        arn.account()
                    ),
                ));
            }
        }
        return Ok(DbUserRole::Arn(arn));
    }
    if db_user.contains('/') || db_user.contains(':') {
        return Err(Error::new(
            ResultCode::AwsInvalidRoleArn,
            format!(
                "db user `{db_user}` is neither an IAM role name nor a full role ARN (arn:{partition}:iam::<account>:role/<name>)"
            ),
        ));
    }
    check_role_name(db_user).map_err(|why| {
        Error::new(
            ResultCode::AwsInvalidRoleArn,
            format!("db user `{db_user}` is not an IAM role name: {why}"),
        )
    })?;
    Ok(DbUserRole::Name(db_user.to_owned()))
}

/// An STS role session name from an identity's user name: characters outside
/// `[A-Za-z0-9_+=,.@-]` become `-`; shorter than 2 characters is padded; longer than 64 is
/// cut and suffixed with a hash of the whole name so that different long names stay
/// distinct (as Teleport does).
pub fn session_name(user: &str) -> String {
    const MAX: usize = 64;
    let mut name: String = user
        .chars()
        .map(|c| if is_iam_name_char(c) { c } else { '-' })
        .collect();
    if name.is_empty() {
        name = "docauth".to_owned();
    }
    if name.len() < 2 {
        name.push_str("-docauth");
    }
    if name.len() > MAX {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(user.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        // All characters are ASCII here, so byte slicing is on a char boundary.
        name.truncate(MAX - hash.len() - 1);
        name.push('-');
        name.push_str(&hash);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition_for_region("us-east-1"), "aws");
        assert_eq!(partition_for_region("eu-west-3"), "aws");
        assert_eq!(partition_for_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_for_region("us-gov-west-1"), "aws-us-gov");
    }

    #[test]
    fn names_become_arns_in_the_partition_and_account() {
        assert_eq!(
            classify_db_user("teleport-docdb-user", "aws", None).unwrap(),
            DbUserRole::Name("teleport-docdb-user".into())
        );
        let arn = RoleArn::from_name("aws-cn", "123456789012", "teleport-docdb-user").unwrap();
        assert_eq!(
            arn.to_string(),
            "arn:aws-cn:iam::123456789012:role/teleport-docdb-user"
        );
    }

    #[test]
    fn full_arns_are_checked() {
        let ok = "arn:aws:iam::123456789012:role/teleport-docdb-user";
        assert_eq!(
            classify_db_user(ok, "aws", Some("123456789012")).unwrap(),
            DbUserRole::Arn(RoleArn::parse(ok, "x").unwrap())
        );
        let with_path = "arn:aws:iam::123456789012:role/team/db/teleport-docdb-user";
        let DbUserRole::Arn(a) = classify_db_user(with_path, "aws", None).unwrap() else {
            panic!()
        };
        assert_eq!(a.name(), "teleport-docdb-user");
        assert_eq!(a.to_string(), with_path);

        let cases = [
            ("arn:aws:iam::123456789012:user/alice", "not a `role`"),
            (
                "arn:aws:sts::123456789012:assumed-role/r/s",
                "service `sts`",
            ),
            ("arn:aws:iam::12345:role/r", "12-digit"),
            ("arn:aws:iam:us-east-1:123456789012:role/r", "no region"),
            ("arn:aws:iam::123456789012:role/", "empty"),
            ("arn:aws:iam::123456789012:role/a b", "contains ` `"),
            ("arn:aws-cn:iam::123456789012:role/r", "partition `aws-cn`"),
            ("arn:aws:iam::210987654321:role/r", "account 210987654321"),
            ("arn:aws:iam", "expected arn:"),
        ];
        for (input, why) in cases {
            let e = classify_db_user(input, "aws", Some("123456789012")).unwrap_err();
            assert_eq!(e.code(), ResultCode::AwsInvalidRoleArn, "{input}");
            assert!(e.message().contains(why), "{input}: {}", e.message());
        }
        for bad in ["role/x", "a:b", "", "x".repeat(65).as_str(), "ünïcode"] {
            let e = classify_db_user(bad, "aws", None).unwrap_err();
            assert_eq!(e.code(), ResultCode::AwsInvalidRoleArn, "{bad}");
        }
    }

    #[test]
    fn session_names_follow_sts_rules() {
        let ok = |s: &str| (2..=64).contains(&s.len()) && s.chars().all(is_iam_name_char);
        assert_eq!(session_name("alice@example.com"), "alice@example.com");
        assert_eq!(session_name("alice smith/ops"), "alice-smith-ops");
        assert_eq!(session_name(""), "docauth");
        assert_eq!(session_name("a"), "a-docauth");
        let long = "remote-raimundo.oliveira@abigcompany.com-teleport.abigcompany.com-cluster";
        let s = session_name(long);
        assert_eq!(s.len(), 64);
        assert!(ok(&s), "{s}");
        assert_ne!(s, session_name(&format!("{long}x")));
        assert!(ok(&session_name("é")));
    }
}
