//! ListMessages: newest first, filters, paging with opaque tokens.

use proto::ingest::{ListMessagesRequest, ListMessagesResponse};
use tonic::Code;

use crate::helpers::{TestApp, spawn_app, text_message, webhook};

async fn list(app: &mut TestApp, req: ListMessagesRequest) -> ListMessagesResponse {
    app.client.list_messages(req).await.unwrap().into_inner()
}

fn wamids(res: &ListMessagesResponse) -> Vec<String> {
    res.messages
        .iter()
        .map(|m| m.message.as_ref().unwrap().wamid.clone())
        .collect()
}

#[tokio::test]
async fn pages_walk_newest_first_and_filters_apply() {
    // Arrange: 5 messages from A, 2 from B, in separate requests (ids increase).
    let mut app = spawn_app().await;
    for i in 0..5 {
        let m = text_message(&format!("wamid.A{i}"), "111", "a");
        app.client
            .ingest_webhook(webhook(vec![m], vec![]))
            .await
            .unwrap();
    }
    for i in 0..2 {
        let m = text_message(&format!("wamid.B{i}"), "222", "b");
        app.client
            .ingest_webhook(webhook(vec![m], vec![]))
            .await
            .unwrap();
    }

    // Act: pages of 2 for sender A.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let res = list(
            &mut app,
            ListMessagesRequest {
                sender: "111".into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        seen.extend(wamids(&res));
        pages += 1;
        if res.next_page_token.is_empty() {
            break;
        }
        token = res.next_page_token;
    }

    // Assert
    assert_eq!(
        seen,
        ["wamid.A4", "wamid.A3", "wamid.A2", "wamid.A1", "wamid.A0"]
    );
    assert_eq!(pages, 3);

    let all = list(&mut app, ListMessagesRequest::default()).await;
    assert_eq!(all.messages.len(), 7);
    assert_eq!(wamids(&all)[0], "wamid.B1");
    assert!(all.next_page_token.is_empty());
    assert!(all.messages.iter().all(|m| m.job.is_some()));

    let by_number = list(
        &mut app,
        ListMessagesRequest {
            phone_number_id: crate::helpers::PHONE_NUMBER_ID.into(),
            direction: "inbound".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_number.messages.len(), 7);
    let outbound = list(
        &mut app,
        ListMessagesRequest {
            direction: "outbound".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(outbound.messages.is_empty());
    let other_number = list(
        &mut app,
        ListMessagesRequest {
            phone_number_id: "999".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(other_number.messages.is_empty());
    app.teardown().await;
}

#[tokio::test]
async fn a_bad_page_token_or_direction_is_an_invalid_argument() {
    let mut app = spawn_app().await;
    for req in [
        ListMessagesRequest {
            page_token: "garbage".into(),
            ..Default::default()
        },
        ListMessagesRequest {
            direction: "sideways".into(),
            ..Default::default()
        },
    ] {
        let err = app.client.list_messages(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    app.teardown().await;
}
