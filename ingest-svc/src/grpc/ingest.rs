//! `whatsapp.ingest.v1.IngestService`.

use proto::ingest::ingest_service_server::IngestService;
use proto::ingest::{
    GetMessageRequest, GetMessageResponse, GetStatsRequest, GetStatsResponse, IngestWebhookRequest,
    IngestWebhookResponse, ListMessagesRequest, ListMessagesResponse, ReplayWebhookEventRequest,
};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use super::convert;
use crate::db::entities::message;
use crate::db::{read, repo};
use crate::domain;
use crate::error::IngestError;
use crate::queue::JobQueue;
use crate::relay;

/// ListMessages page size when the request says 0.
const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest ListMessages page; larger requests are clamped.
const MAX_PAGE_SIZE: u32 = 500;

/// The service implementation: a database pool and the job stream.
#[derive(Debug, Clone)]
pub(crate) struct IngestApi {
    db: DatabaseConnection,
    queue: JobQueue,
}

impl IngestApi {
    pub(crate) fn new(db: DatabaseConnection, queue: JobQueue) -> Self {
        Self { db, queue }
    }
}

/// The caller's `x-request-id` metadata, if any (bounded, for logs and records).
fn metadata_request_id<T>(req: &Request<T>) -> Option<String> {
    req.metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect())
        .filter(|s: &String| !s.is_empty())
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    #[tracing::instrument(name = "IngestWebhook", skip_all, fields(request_id, event_id))]
    async fn ingest_webhook(
        &self,
        request: Request<IngestWebhookRequest>,
    ) -> Result<Response<IngestWebhookResponse>, Status> {
        let header_id = metadata_request_id(&request);
        let req = request.into_inner();
        let request_id = Some(req.request_id.clone())
            .filter(|s| !s.is_empty())
            .or(header_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        tracing::Span::current().record("request_id", request_id.as_str());

        let hook = convert::new_webhook(req, request_id)?;
        let outcome = repo::ingest(&self.db, hook).await?;
        tracing::Span::current().record("event_id", outcome.event_id);

        // Committed: from here on nothing may fail or slow the call. The jobs go onto
        // the stream in the background; if that is lost (crash, Redis down) the relay
        // publishes them from the outbox.
        if !outcome.new_jobs.is_empty() {
            let (db, queue, jobs) = (
                self.db.clone(),
                self.queue.clone(),
                outcome.new_jobs.clone(),
            );
            tokio::spawn(async move { relay::publish_after_commit(&db, &queue, &jobs).await });
        }

        let response = convert::ingest_response(&outcome);
        tracing::info!(
            messages_created = response.messages_created,
            messages_duplicate = response.messages_duplicate,
            statuses_created = response.statuses_created,
            jobs_created = response.jobs_created,
            quarantined = response.quarantined,
            "webhook stored"
        );
        Ok(Response::new(response))
    }

    #[tracing::instrument(name = "GetMessage", skip_all)]
    async fn get_message(
        &self,
        request: Request<GetMessageRequest>,
    ) -> Result<Response<GetMessageResponse>, Status> {
        let wamid = request.into_inner().wamid;
        if wamid.is_empty() {
            return Err(IngestError::invalid("wamid is required").into());
        }
        let view = read::message(&self.db, &domain::db_text(&wamid))
            .await?
            .ok_or_else(|| IngestError::NotFound(format!("no message with wamid {wamid:?}")))?;
        Ok(Response::new(GetMessageResponse {
            message: Some(convert::message_record(view)),
        }))
    }

    #[tracing::instrument(name = "ListMessages", skip_all)]
    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        let req = request.into_inner();
        if ![message::INBOUND, message::OUTBOUND, ""].contains(&req.direction.as_str()) {
            return Err(IngestError::invalid(
                "direction must be \"inbound\", \"outbound\" or empty",
            )
            .into());
        }
        let before = match req.page_token.as_str() {
            "" => None,
            token => Some(
                domain::decode_page_token(token)
                    .ok_or_else(|| IngestError::invalid("invalid page_token"))?,
            ),
        };
        let page_size = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let filter = read::MessageFilter {
            phone_number_id: domain::db_text(&req.phone_number_id),
            sender_key: domain::db_text(&req.sender),
            direction: req.direction,
        };

        let (views, more) = read::messages(&self.db, &filter, before, u64::from(page_size)).await?;
        let next_page_token = match views.last() {
            Some(last) if more => domain::encode_page_token(last.message.id),
            _ => String::new(),
        };
        Ok(Response::new(ListMessagesResponse {
            messages: views.into_iter().map(convert::message_record).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(name = "GetStats", skip_all)]
    async fn get_stats(
        &self,
        _request: Request<GetStatsRequest>,
    ) -> Result<Response<GetStatsResponse>, Status> {
        let stats = read::stats(&self.db).await?;
        Ok(Response::new(convert::stats_response(stats)))
    }

    #[tracing::instrument(name = "ReplayWebhookEvent", skip_all, fields(event_id))]
    async fn replay_webhook_event(
        &self,
        request: Request<ReplayWebhookEventRequest>,
    ) -> Result<Response<IngestWebhookResponse>, Status> {
        let event_id = request.into_inner().event_id;
        tracing::Span::current().record("event_id", event_id);
        let event = read::webhook_event(&self.db, event_id)
            .await?
            .ok_or_else(|| IngestError::NotFound(format!("no webhook event {event_id}")))?;
        let mut parsed = whatsapp_payload::parse(&event.raw_body).map_err(|e| {
            IngestError::invalid(format!("stored event {event_id} does not parse: {e}"))
        })?;
        parsed.received_at_ms = event.received_at;
        let mut hook = convert::new_webhook(parsed, event.request_id)?;
        hook.replay_of = Some(event_id);
        let outcome = repo::ingest(&self.db, hook).await?;
        relay::publish_after_commit(&self.db, &self.queue, &outcome.new_jobs).await;
        let response = convert::ingest_response(&outcome);
        tracing::info!(
            messages_created = response.messages_created,
            jobs_created = response.jobs_created,
            "webhook event replayed"
        );
        Ok(Response::new(response))
    }
}
