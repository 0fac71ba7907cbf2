"""Sets moto up as the DocumentDB guide sets up AWS, for tests/credentials_moto*.rs.

Usage: python credentials_setup.py <moto-url>
Prints one JSON object: the service's access key, ARNs and names the tests use.
Runs before signature checking is turned on (POST /moto-api/reset-auth), so its own
requests are not signed with real keys.
"""

import json
import sys

import boto3

ACCOUNT = "123456789012"
EXTERNAL_ID = "example-external-id"
# Session names the chained tests use: moto matches a trust policy Principal against the
# caller's exact ARN, so a chained caller (an assumed-role session) must be listed as such.
CHAINED_SESSIONS = ["alice", "bob"]


def main() -> None:
    url = sys.argv[1]
    kw = dict(
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    iam = boto3.client("iam", **kw)

    # Step 3 of the guide: the Database Service's identity, allowed to assume tagged roles.
    user = iam.create_user(UserName="teleport-db-service")["User"]
    key = iam.create_access_key(UserName="teleport-db-service")["AccessKey"]
    assume_tagged = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sts:AssumeRole"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"iam:ResourceTag/TeleportDatabaseService": "Allowed"}
                },
            }
        ],
    }
    iam.put_user_policy(
        UserName="teleport-db-service",
        PolicyName="TeleportDatabaseAccessDocumentDB",
        PolicyDocument=json.dumps(assume_tagged),
    )
    tag = [{"Key": "TeleportDatabaseService", "Value": "Allowed"}]

    def trust(principals, external_id=None):
        statement = {
            "Effect": "Allow",
            "Principal": {"AWS": principals},
            "Action": "sts:AssumeRole",
        }
        if external_id:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        return json.dumps({"Version": "2012-10-17", "Statement": [statement]})

    # The assume_role_arn role: trusts the service with an external id, may assume roles.
    access = iam.create_role(
        RoleName="docdb-access",
        AssumeRolePolicyDocument=trust([user["Arn"]], EXTERNAL_ID),
        Tags=tag,
    )["Role"]
    iam.put_role_policy(
        RoleName="docdb-access",
        PolicyName="assume-db-users",
        PolicyDocument=json.dumps(assume_tagged),
    )

    # The web identity role (AssumeRoleWithWebIdentity), which may assume db user roles.
    web = iam.create_role(
        RoleName="web-identity-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/example"},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                    }
                ],
            }
        ),
    )["Role"]
    iam.put_role_policy(
        RoleName="web-identity-role",
        PolicyName="assume-db-users",
        PolicyDocument=json.dumps(assume_tagged),
    )

    # Step 5: the db user role, trusting the service (directly, through docdb-access, and
    # through the web identity session).
    principals = [user["Arn"]]
    principals += [
        f"arn:aws:sts::{ACCOUNT}:assumed-role/docdb-access/{s}" for s in CHAINED_SESSIONS
    ]
    principals.append(f"arn:aws:sts::{ACCOUNT}:assumed-role/web-identity-role/web-session")
    db_user = iam.create_role(
        RoleName="teleport-docdb-user",
        AssumeRolePolicyDocument=trust(principals),
        Tags=tag,
    )["Role"]

    # A role whose trust policy does not name the service.
    untrusted = iam.create_role(
        RoleName="untrusted-role",
        AssumeRolePolicyDocument=trust([f"arn:aws:iam::{ACCOUNT}:user/someone-else"]),
        Tags=tag,
    )["Role"]

    json.dump(
        {
            "account": ACCOUNT,
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
            "user_arn": user["Arn"],
            "db_user_role_arn": db_user["Arn"],
            "assume_role_arn": access["Arn"],
            "external_id": EXTERNAL_ID,
            "web_identity_role_arn": web["Arn"],
            "untrusted_role_arn": untrusted["Arn"],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
