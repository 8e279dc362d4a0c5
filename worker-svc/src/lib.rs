//! worker-svc: takes reply jobs from ingest-svc's job stream
//! (`whatsapp.jobs.v1.JobService/StreamJobs`) and answers customers through
//! the WhatsApp Cloud API.

pub mod config;
mod consumer;
pub mod handler;
pub mod startup;
pub mod telemetry;
pub mod whatsapp;
