//! Bearer auth on the ingest service; health and reflection stay open.

use proto::ingest::GetStatsRequest;
use secrecy::SecretString;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::spawn_app_with;

async fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn with_a_token_configured_calls_need_the_bearer_but_health_does_not() {
    let mut app = spawn_app_with(|s| s.api_token = Some(SecretString::from("s3cret"))).await;

    // No token, wrong token.
    let err = app.client.get_stats(GetStatsRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut req = tonic::Request::new(GetStatsRequest {});
    req.metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    let err = app.client.get_stats(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Right token.
    let mut req = tonic::Request::new(GetStatsRequest {});
    req.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    req.metadata_mut()
        .insert("x-request-id", "req-123".parse().unwrap());
    app.client.get_stats(req).await.expect("authorised call");

    // Health needs no token.
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut health = HealthClient::new(channel(app.addr).await);
    let res = health
        .check(HealthCheckRequest {
            service: "whatsapp.ingest.v1.IngestService".into(),
        })
        .await
        .expect("health is open")
        .into_inner();
    assert_eq!(res.status(), ServingStatus::Serving);
    app.teardown().await;
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_the_services_without_a_token() {
    let app = spawn_app_with(|s| s.api_token = Some(SecretString::from("s3cret"))).await;
    let ch = channel(app.addr).await;

    let v1 = {
        use tonic_reflection::pb::v1::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(ch.clone())
            .server_reflection_info(futures::stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        match stream
            .message()
            .await
            .unwrap()
            .unwrap()
            .message_response
            .unwrap()
        {
            MessageResponse::ListServicesResponse(list) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    let v1alpha = {
        use tonic_reflection::pb::v1alpha::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(ch)
            .server_reflection_info(futures::stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        match stream
            .message()
            .await
            .unwrap()
            .unwrap()
            .message_response
            .unwrap()
        {
            MessageResponse::ListServicesResponse(list) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("unexpected {other:?}"),
        }
    };

    for services in [v1, v1alpha] {
        assert!(
            services.contains(&"whatsapp.ingest.v1.IngestService".to_owned()),
            "{services:?}"
        );
        assert!(
            services.contains(&"grpc.health.v1.Health".to_owned()),
            "{services:?}"
        );
    }
    app.teardown().await;
}
