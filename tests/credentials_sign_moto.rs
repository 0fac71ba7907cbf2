//! Credentials resolved by the provider (AssumeRole through `assume_role_arn`) sign a
//! MONGODB-AWS conversation with our signer, and moto's STS (signature checking on)
//! accepts the signed GetCallerIdentity as the db user's assumed role, the way DocumentDB
//! would forward it.

mod common;

use base64::Engine;
use bson::spec::BinarySubtype;
use common::{Moto, Setup};
use docauth::aws::{ClientConversation, Credentials, CredentialsProvider};

/// Runs the conversation the way DocumentDB does, sending the signed request to moto with
/// `Host: sts.amazonaws.com` (the host the client signed). Returns (status, body).
fn sign_and_send(moto: &Moto, credentials: Credentials) -> (u16, String) {
    let mut conversation = ClientConversation::new(credentials).unwrap();
    let first = conversation.client_first().unwrap();
    let first = bson::Document::from_reader(&mut &first[..]).unwrap();
    let mut nonce = first.get_binary_generic("r").unwrap().clone();
    nonce.extend((0..32u8).map(|i| i.wrapping_mul(37) ^ 0x5a));
    let host = "sts.amazonaws.com";
    let server_first = bson::to_vec(&bson::doc! {
        "s": bson::Binary { subtype: BinarySubtype::Generic, bytes: nonce.clone() },
        "h": host,
    })
    .unwrap();
    let last = conversation.client_final(&server_first).unwrap();
    let last = bson::Document::from_reader(&mut &last[..]).unwrap();
    let authorization = last.get_str("a").unwrap().to_owned();
    let date = last.get_str("d").unwrap().to_owned();
    let token = last.get_str("t").ok().map(str::to_owned);
    let nonce_b64 = base64::engine::general_purpose::STANDARD.encode(&nonce);
    let mut headers = vec![
        ("Host", host),
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("X-Amz-Date", date.as_str()),
        ("Authorization", authorization.as_str()),
        ("X-MongoDB-Server-Nonce", nonce_b64.as_str()),
        ("X-MongoDB-GS2-CB-Flag", "n"),
    ];
    if let Some(t) = &token {
        headers.push(("X-Amz-Security-Token", t.as_str()));
    }
    moto.request(
        "POST",
        "/",
        &headers,
        "Action=GetCallerIdentity&Version=2011-06-15",
    )
    .unwrap()
}

fn arn_in(body: &str) -> Option<&str> {
    let start = body.find("<Arn>")? + 5;
    let end = body[start..].find("</Arn>")? + start;
    Some(&body[start..end])
}

async fn chained_provider(moto: &Moto, setup: &Setup) -> CredentialsProvider {
    CredentialsProvider::new(
        serde_json::from_value(serde_json::json!({
            "source": {"type": "static", "access_key_id": setup.access_key_id,
                       "secret_access_key": setup.secret_access_key},
            "region": "us-east-1", "sts_endpoint": moto.url,
            "database": {"assume_role_arn": setup.assume_role_arn,
                         "external_id": setup.external_id},
        }))
        .unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_credentials_sign_a_mongodb_aws_conversation_moto_accepts() {
    let (moto, setup) = Moto::start(0);
    let provider = chained_provider(&moto, &setup).await;
    for db_user in ["teleport-docdb-user", setup.db_user_role_arn.as_str()] {
        let credentials = provider.resolve(db_user, Some("alice")).await.unwrap();
        let (status, body) = sign_and_send(&moto, credentials);
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            arn_in(&body),
            Some(
                format!(
                    "arn:aws:sts::{}:assumed-role/teleport-docdb-user/alice",
                    setup.account
                )
                .as_str()
            ),
            "{body}"
        );
    }
    // Once by name, once by ARN: one cache entry, one AssumeRole per hop.
    assert_eq!(moto.assumed(&setup.db_user_role_arn).len(), 1);
    assert_eq!(moto.assumed(&setup.assume_role_arn).len(), 1);

    // The same credentials without their session token: moto refuses them, so the test
    // above could fail.
    let credentials = provider
        .resolve("teleport-docdb-user", Some("alice"))
        .await
        .unwrap();
    let aws: aws_credential_types::Credentials = (&credentials).into();
    let without_token =
        Credentials::new(aws.access_key_id(), aws.secret_access_key(), None).unwrap();
    let (status, body) = sign_and_send(&moto, without_token);
    assert_ne!(status, 200, "{body}");
}
