//! Bearer-token check for the application services (health and reflection stay open).

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::IngestError;

/// Requires `authorization: Bearer <token>` when a token is configured.
#[derive(Clone)]
pub(crate) struct BearerAuth {
    token: Option<Arc<SecretString>>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("enabled", &self.token.is_some())
            .finish()
    }
}

impl BearerAuth {
    /// `None` disables the check.
    pub(crate) fn new(token: Option<SecretString>) -> Self {
        Self {
            token: token.map(Arc::new),
        }
    }

    fn check(&self, header: Option<&[u8]>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let Some(presented) = header.and_then(bearer_token) else {
            return false;
        };
        // Constant time over the token bytes (a length mismatch returns early, which
        // reveals only the length).
        presented.ct_eq(expected.expose_secret().as_bytes()).into()
    }
}

/// The token of an `authorization` value `Bearer <token>` (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        if self.check(header) {
            Ok(request)
        } else {
            Err(IngestError::Unauthenticated.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_bearer_token_only_when_configured() {
        let open = BearerAuth::new(None);
        assert!(open.check(None));

        let auth = BearerAuth::new(Some(SecretString::from("t0k")));
        assert!(auth.check(Some(b"Bearer t0k")));
        assert!(auth.check(Some(b"bearer t0k")));
        assert!(!auth.check(Some(b"Bearer t0kx")));
        assert!(!auth.check(Some(b"Basic t0k")));
        assert!(!auth.check(Some(b"Bearer")));
        assert!(!auth.check(None));
    }
}
